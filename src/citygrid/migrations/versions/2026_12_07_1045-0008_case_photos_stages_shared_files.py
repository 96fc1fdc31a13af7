"""case photos: stages reported / feedback / verification; files shared by content hash

The photo table was created with the cases loop (0006) but not used yet. Photos are now
stored by the hash of their (stripped) content, so two rows may name one file: the unique
constraint on ``storage_path`` goes, an index on ``sha256`` comes. The stage "handled"
becomes "feedback", and the grid worker's verification may attach photos ("verification").

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 10:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _stage(*values: str) -> sa.Enum:
    return sa.Enum(*values, name="photostage", native_enum=False, create_constraint=True, length=16)


def upgrade() -> None:
    """Shared files, the new stages."""
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_case_photos_storage_path"), type_="unique")
        batch_op.alter_column(
            "stage",
            existing_type=_stage("reported", "handled"),
            type_=_stage("reported", "handled", "feedback", "verification"),
            existing_nullable=False,
        )
    op.execute("UPDATE case_photos SET stage = 'feedback' WHERE stage = 'handled'")
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.alter_column(
            "stage",
            existing_type=_stage("reported", "handled", "feedback", "verification"),
            type_=_stage("reported", "feedback", "verification"),
            existing_nullable=False,
        )
        batch_op.create_index("ix_case_photos_sha256", ["sha256"], unique=False)


def downgrade() -> None:
    """Back to unique files and the stages reported / handled."""
    op.execute("DELETE FROM case_photos WHERE stage = 'verification'")
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.drop_index("ix_case_photos_sha256")
        batch_op.alter_column(
            "stage",
            existing_type=_stage("reported", "feedback", "verification"),
            type_=_stage("reported", "handled", "feedback", "verification"),
            existing_nullable=False,
        )
    op.execute("UPDATE case_photos SET stage = 'handled' WHERE stage = 'feedback'")
    with op.batch_alter_table("case_photos", schema=None) as batch_op:
        batch_op.alter_column(
            "stage",
            existing_type=_stage("reported", "handled", "feedback", "verification"),
            type_=_stage("reported", "handled"),
            existing_nullable=False,
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_case_photos_storage_path"), ["storage_path"]
        )
