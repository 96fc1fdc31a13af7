"""cases: NOTIFY the live feed when a case event is written (PostgreSQL)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 10:30:00

A statement-level trigger on ``case_events`` sends ``pg_notify('citygrid_case_events', '')``
in the transaction that writes the event: listeners are woken when it commits, and not at
all when it rolls back. Identical notifications of one transaction are delivered once.
SQLite has no NOTIFY; its feed checks ``max(id)`` instead, so nothing changes there.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION citygrid_case_events_notify() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('citygrid_case_events', '');
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER case_events_notify
        AFTER INSERT ON case_events
        FOR EACH STATEMENT EXECUTE FUNCTION citygrid_case_events_notify()
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS case_events_notify ON case_events")
    op.execute("DROP FUNCTION IF EXISTS citygrid_case_events_notify()")
