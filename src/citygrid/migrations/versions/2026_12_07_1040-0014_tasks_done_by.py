"""tasks: who marked a task done

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        # The account (or client) that marked the task done; never personal data.
        batch_op.add_column(sa.Column("done_by", sa.String(length=100), nullable=True))
        batch_op.create_index("ix_tasks_grid_code_state", ["grid_code", "state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_tasks_grid_code_state")
        batch_op.drop_column("done_by")
