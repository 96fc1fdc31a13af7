"""cases: evaluation columns and index; catalogue overrides of deadlines and criteria

``cases.handling_hours`` is the working time from dispatch to feedback, kept by the service
so that the evaluation averages it in SQL; rows handled before this migration are filled in
here with the same calendar. ``cases.closed_on_time`` is set at closure.
``ix_cases_evaluation`` holds every column the evaluation reads, so a territory's cases are
one index range scan with no table lookups.

``category_overrides`` may now change a minor class's deadlines and criteria as well as its
department (each field optional), for a district or, under the city's code, for every
district; ``category_override_changes`` keeps who changed what and when.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:30:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL_BATCH = 5000


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _backfill_handling_hours() -> None:
    from citygrid.cases.calendar import working_time_between

    bind = op.get_bind()
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer),
        sa.column("dispatched_at", sa.DateTime(timezone=True)),
        sa.column("handled_at", sa.DateTime(timezone=True)),
        sa.column("handling_hours", sa.Float),
    )
    last_id = 0
    while True:
        rows = bind.execute(
            sa.select(cases.c.id, cases.c.dispatched_at, cases.c.handled_at)
            .where(
                cases.c.id > last_id,
                cases.c.handled_at.is_not(None),
                cases.c.dispatched_at.is_not(None),
            )
            .order_by(cases.c.id)
            .limit(_BACKFILL_BATCH)
        ).all()
        if not rows:
            return
        values = [
            {
                "row_id": row.id,
                "hours": max(
                    0.0,
                    working_time_between(
                        _aware(row.dispatched_at), _aware(row.handled_at)
                    ).total_seconds()
                    / 3600,
                ),
            }
            for row in rows
        ]
        bind.execute(
            cases.update()
            .where(cases.c.id == sa.bindparam("row_id"))
            .values(handling_hours=sa.bindparam("hours")),
            values,
        )
        last_id = rows[-1].id


def _override_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("deadline_urgent", sa.String(length=8), nullable=True),
        sa.Column("deadline_high", sa.String(length=8), nullable=True),
        sa.Column("deadline_normal", sa.String(length=8), nullable=True),
        sa.Column("register_zh", sa.Text(), nullable=True),
        sa.Column("register_en", sa.Text(), nullable=True),
        sa.Column("close_zh", sa.Text(), nullable=True),
        sa.Column("close_en", sa.Text(), nullable=True),
    ]


def upgrade() -> None:
    """Apply this migration."""
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("handling_hours", sa.Float(), nullable=True))
        batch.add_column(sa.Column("closed_on_time", sa.Boolean(), nullable=True))
    _backfill_handling_hours()
    op.execute(
        "UPDATE cases SET closed_on_time = (closed_at <= deadline_at) "
        "WHERE closed_at IS NOT NULL AND deadline_at IS NOT NULL"
    )
    op.create_index(
        "ix_cases_evaluation",
        "cases",
        [
            "grid_code",
            "reported_at",
            "department",
            "state",
            "rework_count",
            "handling_hours",
            "closed_on_time",
            "deadline_at",
            "duplicate_of",
        ],
    )

    with op.batch_alter_table("category_overrides") as batch:
        batch.alter_column("department", existing_type=sa.String(length=40), nullable=True)
        for column in _override_columns():
            batch.add_column(column)

    op.create_table(
        "category_override_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("category", sa.String(length=5), nullable=False),
        sa.Column("change", sa.String(length=8), nullable=False),
        sa.Column("department", sa.String(length=40), nullable=True),
        *_override_columns(),
        sa.Column("changed_by", sa.String(length=64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_category_override_changes")),
    )
    op.create_index(
        "ix_category_override_changes_category_id",
        "category_override_changes",
        ["category", "id"],
    )


def downgrade() -> None:
    """Revert this migration (overrides that change only deadlines or criteria are
    dropped: the old schema needs a department)."""
    op.drop_index(
        "ix_category_override_changes_category_id", table_name="category_override_changes"
    )
    op.drop_table("category_override_changes")
    op.execute("DELETE FROM category_overrides WHERE department IS NULL")
    with op.batch_alter_table("category_overrides") as batch:
        for column in _override_columns():
            batch.drop_column(column.name)
        batch.alter_column("department", existing_type=sa.String(length=40), nullable=False)
    op.drop_index("ix_cases_evaluation", table_name="cases")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of ``cases`` would drop
    # the table that case_transitions, case_photos and case_events refer to.
    op.drop_column("cases", "closed_on_time")
    op.drop_column("cases", "handling_hours")
