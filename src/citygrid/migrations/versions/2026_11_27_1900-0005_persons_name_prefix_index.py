"""registry: index for name-prefix search in code point order (PostgreSQL)

The access gateway searches names by prefix as a range in code point order, which on
PostgreSQL it writes ``name COLLATE "C"`` (the database's collation may be linguistic, under
which a range is not "starts with"). No existing index serves that expression: a prefix search
over a district of 1,000,000 residents scanned the grid-code range (about 500 ms; a street,
about 125 ms). With this index, whose second column lets the scope be checked inside the
index, the same searches take about 3-8 ms and 1-3 ms.

SQLite compares text bytewise (code point order for UTF-8) and its ``ix_persons_name`` serves
the same range: nothing to add there. The index is not declared on the model (an expression
index in one dialect only); autogenerate against PostgreSQL may offer to drop it: keep it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 19:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            'CREATE INDEX ix_persons_name_c_grid_code ON persons ((name COLLATE "C"), grid_code)'
        )


def downgrade() -> None:
    """Revert this migration."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_persons_name_c_grid_code")
