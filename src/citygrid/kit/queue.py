"""Work queues in the database (the outbox, webhook deliveries): claiming a batch of due
rows for one worker, so that several workers, in one process or many, never take the same
row; and walking a queue's rows in windows of ids, oldest first, for the retention purge.

A queue table has ``id``, ``state``, ``claimed_by``, ``claimed_until`` and ``attempts``
columns. One UPDATE claims: on PostgreSQL its subquery locks the candidates with
``FOR UPDATE SKIP LOCKED`` (concurrent workers take different rows); on SQLite the
statement is the transaction's first write, so it holds the one writer lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, func, select, update
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


@dataclass(frozen=True, slots=True)
class Window:
    """A run of consecutive rows of a queue by id: ``after < id <= last``."""

    after: int
    last: int
    rows: int
    newest: datetime  # the latest ``created_at`` of its rows (UTC)


def next_window(session: Session, table: Table, *, after: int, size: int) -> Window | None:
    """The next ``size`` rows of a queue table by id after ``after`` (an index range of the
    primary key, so each window costs the same wherever it lies); None past the last row."""
    rows = (
        select(table.c.id, table.c.created_at)
        .where(table.c.id > after)
        .order_by(table.c.id)
        .limit(size)
        .subquery()
    )
    last, count, newest = session.execute(
        select(func.max(rows.c.id), func.count(), func.max(rows.c.created_at))
    ).one()
    if not count:
        return None
    newest = newest.replace(tzinfo=UTC) if newest.tzinfo is None else newest.astimezone(UTC)
    return Window(after=after, last=int(last), rows=int(count), newest=newest)
