"""Every query of the access log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, and_, func, insert, or_, select, text
from sqlalchemy.orm import Session

from citygrid.audit.models import AuditCheckpoint, AuditEntry, AuditLeaf, AuditNode, AuditSubject

ENTRY_COLUMNS = (
    AuditEntry.id,
    AuditEntry.created_at,
    AuditEntry.actor,
    AuditEntry.role,
    AuditEntry.department,
    AuditEntry.scope,
    AuditEntry.purpose,
    AuditEntry.action,
    AuditEntry.outcome,
    AuditEntry.subjects,
    AuditEntry.fields,
    AuditEntry.request_id,
    AuditEntry.client_address,
    AuditEntry.detail,
    AuditEntry.leaf_hash,
)


_ENTRIES = cast(Table, AuditEntry.__table__)
# Built once, on the table: a Core INSERT skips the ORM's bulk-insert machinery, which costs
# more than the statement itself on the hot paths that append one entry at a time.
_INSERT_ENTRY = insert(_ENTRIES).returning(_ENTRIES.c.id)
_INSERT_ENTRIES = insert(_ENTRIES)


def insert_entry(session: Session, row: dict[str, Any]) -> int:
    """Insert one entry and return its id."""
    return int(session.execute(_INSERT_ENTRY, row).scalar_one())


def insert_entries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert entries in one executemany (no RETURNING: the bulk path stays lean)."""
    if rows:
        session.execute(_INSERT_ENTRIES, list(rows))


def insert_subjects(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Index entries by the persons they touched."""
    if rows:
        session.execute(insert(AuditSubject), list(rows))


def lock_sequencer(session: Session) -> None:
    """Serialise sequencers until the end of the transaction (call it first in the transaction).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: take the database's write lock now
    with a write that touches no row (a WAL reader that writes later, after another sequencer
    committed, fails with "database is locked" instead of waiting for it).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(6962)"))
    else:
        session.execute(text("UPDATE audit_checkpoints SET id = id WHERE 0"))


def tree_size(session: Session) -> int:
    """How many entries have a tree position (the highest position + 1: one index lookup)."""
    highest = session.execute(select(func.max(AuditLeaf.position))).scalar_one()
    return 0 if highest is None else int(highest) + 1


def unsequenced(
    session: Session, limit: int, *, window: timedelta | None = None
) -> Sequence[Row[int, bytes, list[str]]]:
    """Entries without a position, oldest first.

    With ``window``, only the entries after the last sequenced one and those appended within
    ``window`` before it are looked at (index ranges, not the whole table): an entry that
    committed late can only be that recent, as long as its transaction lasted less than
    ``window``.
    """
    pending = (
        select(AuditEntry.id, AuditEntry.leaf_hash, AuditEntry.subjects)
        .outerjoin(AuditLeaf, AuditLeaf.entry_id == AuditEntry.id)
        .where(AuditLeaf.entry_id.is_(None))
        .limit(limit)
    )
    if window is not None:
        last = session.execute(
            select(AuditEntry.id, AuditEntry.created_at).where(
                AuditEntry.id == select(func.max(AuditLeaf.entry_id)).scalar_subquery()
            )
        ).first()
        if last is not None:
            # Each part ordered by its own index, so that neither scans the table.
            late = pending.where(AuditEntry.created_at >= last.created_at - window).order_by(
                AuditEntry.created_at
            )
            newer = pending.where(AuditEntry.id > last.id).order_by(AuditEntry.id)
            rows = {row.id: row for row in session.execute(late)}
            rows.update({row.id: row for row in session.execute(newer)})
            return [rows[entry_id] for entry_id in sorted(rows)[:limit]]
    return session.execute(pending.order_by(AuditEntry.id)).all()


def insert_leaves(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Give entries their positions."""
    if rows:
        session.execute(insert(AuditLeaf), list(rows))


def insert_nodes(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Store perfect-subtree hashes."""
    if rows:
        session.execute(insert(AuditNode), list(rows))


def nodes(session: Session, keys: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Stored hashes for (level, index) keys; level 0 is a leaf."""
    found: dict[tuple[int, int], bytes] = {}
    leaf_positions = [index for level, index in keys if level == 0]
    inner = [(level, index) for level, index in keys if level > 0]
    if leaf_positions:
        stmt = select(AuditLeaf.position, AuditLeaf.leaf_hash).where(
            AuditLeaf.position.in_(leaf_positions)
        )
        found.update({(0, position): digest for position, digest in session.execute(stmt)})
    if inner:
        by_level: dict[int, list[int]] = {}
        for level, index in inner:
            by_level.setdefault(level, []).append(index)
        # One indexed range per level: SQLite answers a row-value IN ((l, i), ...) by
        # scanning the whole table.
        stmt2 = select(AuditNode.level, AuditNode.node_index, AuditNode.hash).where(
            or_(
                *(
                    and_(AuditNode.level == level, AuditNode.node_index.in_(indexes))
                    for level, indexes in by_level.items()
                )
            )
        )
        found.update({(level, index): digest for level, index, digest in session.execute(stmt2)})
    return found


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The newest signed tree head."""
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size.desc()).limit(1)
    return session.execute(stmt).scalar_one_or_none()


def add_checkpoint(session: Session, values: dict[str, Any]) -> AuditCheckpoint:
    """Store a signed tree head."""
    checkpoint = AuditCheckpoint(**values)
    session.add(checkpoint)
    session.flush()
    return checkpoint


def checkpoints_page(
    session: Session, *, before_id: int | None = None, limit: int = 50
) -> list[AuditCheckpoint]:
    """Checkpoints newest first, older than ``before_id`` when given (keyset pagination)."""
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(AuditCheckpoint.id < before_id)
    return list(session.execute(stmt).scalars())


def checkpoints(session: Session) -> list[AuditCheckpoint]:
    """Every checkpoint, smallest tree first."""
    stmt = select(AuditCheckpoint).order_by(AuditCheckpoint.tree_size, AuditCheckpoint.id)
    return list(session.execute(stmt).scalars())


def leaf_of_entry(session: Session, entry_id: int) -> AuditLeaf | None:
    """The position of an entry, if sequenced."""
    return session.execute(
        select(AuditLeaf).where(AuditLeaf.entry_id == entry_id)
    ).scalar_one_or_none()


def entry(session: Session, entry_id: int) -> Row[Any] | None:
    """One entry."""
    return session.execute(select(*ENTRY_COLUMNS).where(AuditEntry.id == entry_id)).one_or_none()


def sequenced_entries(session: Session, batch: int = 20_000) -> Iterator[Row[Any]]:
    """Positions in order with the stored leaf hash and the entry (NULLs if it is gone)."""
    stmt = (
        select(
            AuditLeaf.position,
            AuditLeaf.entry_id,
            AuditLeaf.leaf_hash.label("tree_hash"),
            *ENTRY_COLUMNS,
        )
        .outerjoin(AuditEntry, AuditEntry.id == AuditLeaf.entry_id)
        .order_by(AuditLeaf.position)
        .execution_options(yield_per=batch)
    )
    yield from session.execute(stmt)


def stray_entries(
    session: Session, before: datetime, limit: int = 10
) -> Sequence[Row[int, datetime]]:
    """Entries older than ``before`` that never got a position: inserted behind the log's back."""
    stmt = (
        select(AuditEntry.id, AuditEntry.created_at)
        .outerjoin(AuditLeaf, AuditLeaf.entry_id == AuditEntry.id)
        .where(AuditLeaf.entry_id.is_(None), AuditEntry.created_at < before)
        .order_by(AuditEntry.id)
        .limit(limit)
    )
    return session.execute(stmt).all()


def search(
    session: Session,
    *,
    actor: str | None = None,
    subject: str | None = None,
    purpose: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[Row[Any]]:
    """Entries matching the filters with their tree positions (None until sequenced), newest
    first (keyset pagination by id)."""
    stmt = select(*ENTRY_COLUMNS, AuditLeaf.position).outerjoin(
        AuditLeaf, AuditLeaf.entry_id == AuditEntry.id
    )
    if subject is not None:
        stmt = stmt.join(AuditSubject, AuditSubject.entry_id == AuditEntry.id).where(
            AuditSubject.subject == subject
        )
    if actor is not None:
        stmt = stmt.where(AuditEntry.actor == actor)
    if purpose is not None:
        stmt = stmt.where(AuditEntry.purpose == purpose)
    if since is not None:
        stmt = stmt.where(AuditEntry.created_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.created_at < until)
    if before_id is not None:
        stmt = stmt.where(AuditEntry.id < before_id)
    return list(session.execute(stmt.order_by(AuditEntry.id.desc()).limit(limit)).all())
