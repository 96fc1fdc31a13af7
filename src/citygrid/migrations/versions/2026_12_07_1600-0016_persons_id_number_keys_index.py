"""persons: a covering index of the keys the bulk import looks up by ID number

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The bulk import reads (id, ref, grid_code, status) of thousands of persons a batch by ID
    # number: from this index alone, without a visit to each person's table row.
    op.create_index(
        "ix_persons_id_number_keys", "persons", ["id_number", "ref", "grid_code", "status"]
    )


def downgrade() -> None:
    op.drop_index("ix_persons_id_number_keys", table_name="persons")
