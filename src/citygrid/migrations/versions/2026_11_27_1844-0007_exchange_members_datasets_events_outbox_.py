"""exchange: members, datasets, events, outbox, tasks

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 18:44:05.710405
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The founding members, as exchange/catalogue.toml lists them at this revision (later
# changes to the file reach the table with `citygrid exchange members sync`).
FOUNDING_MEMBERS = (
    (
        "public-security",
        "公安局",
        "Public Security Bureau",
        "数据交换联络：公安局科技信息化科 data@gaj.example.gov.cn",
    ),
    (
        "family-planning",
        "卫生健康局（计划生育）",
        "Health Commission (Family Planning)",
        "数据交换联络：卫生健康局信息科 data@wjw.example.gov.cn",
    ),
    (
        "rental-housing",
        "出租屋管理办公室",
        "Rental Housing Management Office",
        "数据交换联络：出租屋管理办公室综合科 data@czw.example.gov.cn",
    ),
    (
        "civil-affairs",
        "民政局",
        "Civil Affairs Bureau",
        "数据交换联络：民政局社会救助科 data@mzj.example.gov.cn",
    ),
    (
        "social-security",
        "人力资源和社会保障局",
        "Human Resources and Social Security Bureau",
        "数据交换联络：人社局信息中心 data@rsj.example.gov.cn",
    ),
    (
        "housing-construction",
        "住房和城乡建设局",
        "Housing and Urban-Rural Development Bureau",
        "数据交换联络：住建局信息科 data@zjj.example.gov.cn",
    ),
    (
        "water-affairs",
        "水务局",
        "Water Affairs Bureau",
        "数据交换联络：水务局信息科 data@swj.example.gov.cn",
    ),
    (
        "market-regulation",
        "市场监督管理局",
        "Administration for Market Regulation",
        "数据交换联络：市场监管局信息科 data@scjgj.example.gov.cn",
    ),
)


def upgrade() -> None:
    """Apply this migration."""
    members = op.create_table(
        "exchange_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=40), nullable=False),
        sa.Column("name_zh", sa.String(length=100), nullable=False),
        sa.Column("name_en", sa.String(length=200), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_members")),
        sa.UniqueConstraint("slug", name=op.f("uq_exchange_members_slug")),
    )
    op.create_table(
        "exchange_publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("publisher", sa.String(length=100), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_publications")),
    )
    with op.batch_alter_table("exchange_publications", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_publications_dataset_at", ["dataset", "published_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_publications_department"), ["department"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("topic", sa.String(length=60), nullable=False),
        sa.Column("subject_person_id", sa.Integer(), nullable=True),
        sa.Column("subject_grid_code", sa.String(length=15), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "pending",
                "claimed",
                "delivered",
                "dead",
                name="outboxstate",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_subject_undelivered",
            ["subject_person_id", "id"],
            unique=False,
            postgresql_where=sa.text("state IN ('pending', 'claimed')"),
            sqlite_where=sa.text("state IN ('pending', 'claimed')"),
        )
        batch_op.create_index(
            "ix_outbox_undelivered",
            ["id"],
            unique=False,
            postgresql_where=sa.text("state IN ('pending', 'claimed')"),
            sqlite_where=sa.text("state IN ('pending', 'claimed')"),
        )

    op.create_table(
        "outbox_deliveries",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("entry_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("consumer", sa.String(length=60), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["entry_id"], ["outbox.id"], name=op.f("fk_outbox_deliveries_entry_id_outbox")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_deliveries")),
        sa.UniqueConstraint("entry_id", "consumer", name="uq_outbox_deliveries_entry_consumer"),
    )
    op.create_table(
        "exchange_allowances",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "suspended",
                "stopped",
                name="allowancestatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_exchange_allowances_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_exchange_allowances_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_allowances")),
        sa.UniqueConstraint("person_id", name=op.f("uq_exchange_allowances_person_id")),
    )
    with op.batch_alter_table("exchange_allowances", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_allowances_grid_code"), ["grid_code"], unique=False
        )

    op.create_table(
        "exchange_criminal_records",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("criminal_record", sa.Boolean(), nullable=False),
        sa.Column("since", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_exchange_criminal_records_person_id_persons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_criminal_records")),
        sa.UniqueConstraint("person_id", name=op.f("uq_exchange_criminal_records_person_id")),
    )
    with op.batch_alter_table("exchange_criminal_records", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_criminal_records_grid_code"), ["grid_code"], unique=False
        )

    op.create_table(
        "exchange_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=False),
        sa.Column("publisher", sa.String(length=100), nullable=False),
        sa.Column("source_event_id", sa.String(length=100), nullable=False),
        sa.Column("payload_hash", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("grid_code", sa.String(length=15), nullable=True),
        sa.Column("applied", sa.Boolean(), nullable=True),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("facts", sa.JSON(), nullable=True),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_exchange_events_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_events")),
        sa.UniqueConstraint("department", "source_event_id", name="uq_exchange_events_source"),
    )
    with op.batch_alter_table("exchange_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_exchange_events_department_received", ["department", "received_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_events_grid_code"), ["grid_code"], unique=False
        )
        batch_op.create_index(
            "ix_exchange_events_person_occurred", ["person_id", "occurred_at"], unique=False
        )

    op.create_table(
        "exchange_marital_statuses",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column(
            "marital_status",
            sa.Enum(
                "unmarried",
                "married",
                "divorced",
                "widowed",
                name="maritalstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("since", sa.Date(), nullable=True),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["persons.id"],
            name=op.f("fk_exchange_marital_statuses_person_id_persons"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_marital_statuses")),
        sa.UniqueConstraint("person_id", name=op.f("uq_exchange_marital_statuses_person_id")),
    )
    with op.batch_alter_table("exchange_marital_statuses", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_marital_statuses_grid_code"), ["grid_code"], unique=False
        )

    op.create_table(
        "exchange_pensions",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=12, scale=2), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "stopped",
                name="pensionstatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_exchange_pensions_amount_not_negative")),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_exchange_pensions_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_pensions")),
        sa.UniqueConstraint("person_id", name=op.f("uq_exchange_pensions_person_id")),
    )
    with op.batch_alter_table("exchange_pensions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_pensions_grid_code"), ["grid_code"], unique=False
        )

    op.create_table(
        "exchange_subject_clocks",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("clocks", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_exchange_subject_clocks_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("person_id", name=op.f("pk_exchange_subject_clocks")),
    )
    op.create_table(
        "exchange_tenancies",
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column(
            "status",
            sa.Enum(
                "active",
                "ended",
                name="tenancystatus",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("changed_by", sa.String(length=100), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status <> 'ended' OR until IS NOT NULL",
            name=op.f("ck_exchange_tenancies_ended_has_until"),
        ),
        sa.CheckConstraint(
            "until IS NULL OR until >= since", name=op.f("ck_exchange_tenancies_period_order")
        ),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name=op.f("fk_exchange_tenancies_person_id_persons")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["housing_units.id"],
            name=op.f("fk_exchange_tenancies_unit_id_housing_units"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exchange_tenancies")),
        sa.UniqueConstraint("person_id", "unit_id", "since", name="uq_exchange_tenancies_key"),
    )
    with op.batch_alter_table("exchange_tenancies", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_exchange_tenancies_grid_code"), ["grid_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_tenancies_person_id"), ["person_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_exchange_tenancies_unit_id"), ["unit_id"], unique=False
        )

    op.create_table(
        "tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "assignee_kind",
            sa.Enum(
                "department",
                "grid",
                name="assigneekind",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("assignee", sa.String(length=40), nullable=False),
        sa.Column("grid_code", sa.String(length=15), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject_person_id", sa.Integer(), nullable=True),
        sa.Column("subject_ref", sa.String(length=24), nullable=True),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "state",
            sa.Enum(
                "open",
                "done",
                name="taskstate",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column(
            "created_by_event_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_event_id"],
            ["exchange_events.id"],
            name=op.f("fk_tasks_created_by_event_id_exchange_events"),
        ),
        sa.ForeignKeyConstraint(
            ["subject_person_id"], ["persons.id"], name=op.f("fk_tasks_subject_person_id_persons")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint(
            "created_by_event_id", "kind", "assignee", name="uq_tasks_event_kind_assignee"
        ),
    )
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tasks_assignee_state", ["assignee_kind", "assignee", "state"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_tasks_grid_code"), ["grid_code"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_tasks_subject_person_id"), ["subject_person_id"], unique=False
        )

    op.bulk_insert(
        members,
        [
            {"slug": slug, "name_zh": name_zh, "name_en": name_en, "contact": contact}
            for slug, name_zh, name_en, contact in FOUNDING_MEMBERS
        ],
    )


def downgrade() -> None:
    """Revert this migration."""
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tasks_subject_person_id"))
        batch_op.drop_index(batch_op.f("ix_tasks_grid_code"))
        batch_op.drop_index("ix_tasks_assignee_state")

    op.drop_table("tasks")
    with op.batch_alter_table("exchange_tenancies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_tenancies_unit_id"))
        batch_op.drop_index(batch_op.f("ix_exchange_tenancies_person_id"))
        batch_op.drop_index(batch_op.f("ix_exchange_tenancies_grid_code"))

    op.drop_table("exchange_tenancies")
    op.drop_table("exchange_subject_clocks")
    with op.batch_alter_table("exchange_pensions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_pensions_grid_code"))

    op.drop_table("exchange_pensions")
    with op.batch_alter_table("exchange_marital_statuses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_marital_statuses_grid_code"))

    op.drop_table("exchange_marital_statuses")
    with op.batch_alter_table("exchange_events", schema=None) as batch_op:
        batch_op.drop_index("ix_exchange_events_person_occurred")
        batch_op.drop_index(batch_op.f("ix_exchange_events_grid_code"))
        batch_op.drop_index("ix_exchange_events_department_received")

    op.drop_table("exchange_events")
    with op.batch_alter_table("exchange_criminal_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_criminal_records_grid_code"))

    op.drop_table("exchange_criminal_records")
    with op.batch_alter_table("exchange_allowances", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_allowances_grid_code"))

    op.drop_table("exchange_allowances")
    op.drop_table("outbox_deliveries")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_outbox_undelivered",
            postgresql_where=sa.text("state IN ('pending', 'claimed')"),
            sqlite_where=sa.text("state IN ('pending', 'claimed')"),
        )
        batch_op.drop_index(
            "ix_outbox_subject_undelivered",
            postgresql_where=sa.text("state IN ('pending', 'claimed')"),
            sqlite_where=sa.text("state IN ('pending', 'claimed')"),
        )

    op.drop_table("outbox")
    with op.batch_alter_table("exchange_publications", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_exchange_publications_department"))
        batch_op.drop_index("ix_exchange_publications_dataset_at")

    op.drop_table("exchange_publications")
    op.drop_table("exchange_members")
