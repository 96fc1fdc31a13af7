"""access log

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 18:07:02.633559
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AUDIT_TABLES = (
    "audit_entries",
    "audit_subjects",
    "audit_leaves",
    "audit_nodes",
    "audit_checkpoints",
)

POSTGRES_GUARD = """
CREATE OR REPLACE FUNCTION citygrid_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the access log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END;
$$ LANGUAGE plpgsql
"""


def _guard_audit_tables() -> None:
    """Refuse UPDATE and DELETE on the access log's tables, in the database itself."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_GUARD)
        for table in AUDIT_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION citygrid_audit_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION citygrid_audit_append_only()"
            )
            # Ordinary roles may only read and append (the owner is kept in check by the trigger).
            op.execute(f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM PUBLIC")
        return
    for table in AUDIT_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'the access log is append-only: "
                f"{operation} on {table} refused'); END"
            )


def _unguard_audit_tables() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in AUDIT_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS citygrid_audit_append_only()")
        return
    for table in AUDIT_TABLES:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "tree_size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("root_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_audit_checkpoints_tree_size"), ["tree_size"], unique=False
        )

    op.create_table(
        "audit_entries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=True),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("subjects", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_entries")),
    )
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audit_entries_actor_created_at", ["actor", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_audit_entries_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            "ix_audit_entries_purpose_created_at", ["purpose", "created_at"], unique=False
        )

    op.create_table(
        "audit_leaves",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_audit_leaves")),
        sa.UniqueConstraint("entry_id", name=op.f("uq_audit_leaves_entry_id")),
    )
    op.create_table(
        "audit_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "node_index",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "node_index", name=op.f("pk_audit_nodes")),
    )
    op.create_table(
        "audit_subjects",
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subject", sa.String(length=24), nullable=False),
        sa.PrimaryKeyConstraint("entry_id", "subject", name=op.f("pk_audit_subjects")),
    )
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_subjects_subject"), ["subject"], unique=False)
    _guard_audit_tables()


def downgrade() -> None:
    """Revert this migration."""
    _unguard_audit_tables()
    with op.batch_alter_table("audit_subjects", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_subjects_subject"))

    op.drop_table("audit_subjects")
    op.drop_table("audit_nodes")
    op.drop_table("audit_leaves")
    with op.batch_alter_table("audit_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_entries_purpose_created_at")
        batch_op.drop_index(batch_op.f("ix_audit_entries_created_at"))
        batch_op.drop_index("ix_audit_entries_actor_created_at")

    op.drop_table("audit_entries")
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_tree_size"))

    op.drop_table("audit_checkpoints")
