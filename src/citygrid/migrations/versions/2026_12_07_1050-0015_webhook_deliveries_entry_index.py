"""webhook deliveries: an index by outbox entry, for the retention purge

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 10:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Deleting an outbox entry checks the deliveries pointing at it (the foreign key); without
    # this index each deleted entry would scan every delivery.
    op.create_index("ix_webhook_deliveries_entry", "webhook_deliveries", ["entry_id"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_entry", table_name="webhook_deliveries")
