"""cases: incident cases, transitions, photos, "me too", category overrides, case events

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 18:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    op.create_table(
        "category_overrides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("category", sa.String(length=5), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_category_overrides")),
        sa.UniqueConstraint(
            "district_code", "category", name="uq_category_overrides_district_category"
        ),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("ref", sa.String(length=24), nullable=False),
        sa.Column("category", sa.String(length=5), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "component",
                "event",
                name="casekind",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "priority",
            sa.Enum(
                "urgent",
                "high",
                "normal",
                name="priority",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "state",
            sa.Enum(
                "reported",
                "registered",
                "rejected",
                "dispatched",
                "handling",
                "handled",
                "closed",
                "evaluated",
                name="casestate",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("community_code", sa.String(length=12), nullable=False),
        sa.Column("street_code", sa.String(length=9), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=True),
        sa.Column(
            "source",
            sa.Enum(
                "grid_worker",
                "hotline",
                "citizen",
                "open311",
                name="casesource",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("reporter_name", sa.String(length=64), nullable=False),
        sa.Column("reporter_contact_name", sa.String(length=50), nullable=True),
        sa.Column("reporter_contact_phone", sa.String(length=20), nullable=True),
        sa.Column("idempotency_key", sa.String(length=64), nullable=True),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rework_count", sa.Integer(), nullable=False),
        sa.Column(
            "duplicate_of", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("me_too_count", sa.Integer(), nullable=False),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("me_too_count >= 0", name=op.f("ck_cases_me_too_count_positive")),
        sa.CheckConstraint("rework_count >= 0", name=op.f("ck_cases_rework_count_positive")),
        sa.CheckConstraint(
            "satisfaction IS NULL OR satisfaction BETWEEN 1 AND 5", name=op.f("ck_cases_score")
        ),
        sa.ForeignKeyConstraint(
            ["duplicate_of"], ["cases.id"], name=op.f("fk_cases_duplicate_of_cases")
        ),
        sa.ForeignKeyConstraint(
            ["grid_code"],
            ["territorial_units.code"],
            name=op.f("fk_cases_grid_code_territorial_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cases")),
        sa.UniqueConstraint("ref", name=op.f("uq_cases_ref")),
        sa.UniqueConstraint(
            "reporter_name", "idempotency_key", name="uq_cases_reporter_idempotency_key"
        ),
    )
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cases_category_reported_at", ["category", "reported_at"], unique=False
        )
        batch_op.create_index("ix_cases_department_state", ["department", "state"], unique=False)
        batch_op.create_index("ix_cases_grid_code_state", ["grid_code", "state"], unique=False)
        batch_op.create_index("ix_cases_state_deadline_at", ["state", "deadline_at"], unique=False)

    op.create_table(
        "case_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_events_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_events")),
    )
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_events_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_events_grid_code"), ["grid_code"], unique=False)

    op.create_table(
        "case_me_toos",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("reporter_name", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_me_toos_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_me_toos")),
        sa.UniqueConstraint("case_id", "reporter_name", name="uq_case_me_toos_case_reporter"),
    )
    with op.batch_alter_table("case_me_toos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_me_toos_grid_code"), ["grid_code"], unique=False)

    op.create_table(
        "case_photos",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column(
            "stage",
            sa.Enum(
                "reported",
                "handled",
                name="photostage",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("storage_path", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("taken_lon", sa.Float(), nullable=True),
        sa.Column("taken_lat", sa.Float(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("size_bytes > 0", name=op.f("ck_case_photos_size_positive")),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_photos_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_photos")),
        sa.UniqueConstraint("storage_path", name=op.f("uq_case_photos_storage_path")),
    )
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_photos_case_id"), ["case_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_case_photos_grid_code"), ["grid_code"], unique=False)

    op.create_table(
        "case_transitions",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column(
            "action",
            sa.Enum(
                "report",
                "register",
                "reject",
                "dispatch",
                "return",
                "accept",
                "feedback",
                "verify",
                "evaluate",
                "escalate",
                name="action",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column(
            "from_state",
            sa.Enum(
                "reported",
                "registered",
                "rejected",
                "dispatched",
                "handling",
                "handled",
                "closed",
                "evaluated",
                name="from_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=True,
        ),
        sa.Column(
            "to_state",
            sa.Enum(
                "reported",
                "registered",
                "rejected",
                "dispatched",
                "handling",
                "handled",
                "closed",
                "evaluated",
                name="to_state",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("actor_name", sa.String(length=64), nullable=False),
        sa.Column("actor_role", sa.String(length=32), nullable=False),
        sa.Column("actor_department", sa.String(length=40), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], name=op.f("fk_case_transitions_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_transitions")),
    )
    with op.batch_alter_table("case_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_case_transitions_case_id"), ["case_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_case_transitions_grid_code"), ["grid_code"], unique=False
        )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("case_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_transitions_grid_code"))
        batch_op.drop_index(batch_op.f("ix_case_transitions_case_id"))

    op.drop_table("case_transitions")
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_photos_grid_code"))
        batch_op.drop_index(batch_op.f("ix_case_photos_case_id"))

    op.drop_table("case_photos")
    with op.batch_alter_table("case_me_toos", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_me_toos_grid_code"))

    op.drop_table("case_me_toos")
    with op.batch_alter_table("case_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_case_events_grid_code"))
        batch_op.drop_index(batch_op.f("ix_case_events_case_id"))

    op.drop_table("case_events")
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_state_deadline_at")
        batch_op.drop_index("ix_cases_grid_code_state")
        batch_op.drop_index("ix_cases_department_state")
        batch_op.drop_index("ix_cases_category_reported_at")

    op.drop_table("cases")
    op.drop_table("category_overrides")
