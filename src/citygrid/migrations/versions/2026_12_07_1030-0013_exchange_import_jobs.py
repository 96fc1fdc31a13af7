"""exchange: bulk import jobs (the checkpoint of a resumable `citygrid import`)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "exchange_import_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=40), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("publisher", sa.String(length=100), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("file_size", _BIG, nullable=False),
        sa.Column(
            "phase",
            sa.Enum(
                "validating",
                "applying",
                "done",
                "rejected",
                name="importphase",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("rows_done", _BIG, nullable=False),
        sa.Column("line", _BIG, nullable=False),
        sa.Column("byte_offset", _BIG, nullable=False),
        sa.Column("report_bytes", _BIG, nullable=False),
        sa.Column("created", _BIG, nullable=False),
        sa.Column("updated", _BIG, nullable=False),
        sa.Column("unchanged", _BIG, nullable=False),
        sa.Column("rejected", _BIG, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checkpoint_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_import_jobs")),
        sa.UniqueConstraint("dataset", "fingerprint", name="uq_exchange_import_jobs_file"),
    )
    with op.batch_alter_table("exchange_import_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_import_jobs_department"), ["department"], unique=False
        )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("exchange_import_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_import_jobs_department"))
    op.drop_table("exchange_import_jobs")
