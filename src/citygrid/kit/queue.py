"""Work queues in the database (the outbox, webhook deliveries): claiming a batch of due
rows for one worker, so that several workers, in one process or many, never take the same
row.

A queue table has ``id``, ``state``, ``claimed_by``, ``claimed_until`` and ``attempts``
columns. One UPDATE claims: on PostgreSQL its subquery locks the candidates with
``FOR UPDATE SKIP LOCKED`` (concurrent workers take different rows); on SQLite the
statement is the transaction's first write, so it holds the one writer lock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, select, update
from sqlalchemy.orm import Session


def claim_batch(
    session: Session,
    table: Table,
    *,
    claimable: ColumnElement[bool],
    batch: int,
    claimed_state: Any,
    worker_id: str,
    lease_until: datetime,
) -> list[int]:
    """Claim up to ``batch`` rows meeting ``claimable``, oldest first, for ``worker_id``
    until ``lease_until``; their ids, ascending."""
    candidates = select(table.c.id).where(claimable).order_by(table.c.id).limit(batch)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(table)
        .where(table.c.id.in_(candidates.scalar_subquery()))
        .values(
            state=claimed_state,
            claimed_by=worker_id,
            claimed_until=lease_until,
            attempts=table.c.attempts + 1,
        )
        .returning(table.c.id)
    )
    return sorted(session.execute(statement).scalars())
