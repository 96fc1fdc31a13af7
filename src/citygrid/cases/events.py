"""Typed events of the case loop, written to ``case_events`` in the transaction of the change.

Every creation emits ``CaseCreated``; every transition, "me too" and escalation emits
``CaseChanged``. ``emit`` is the one way they are written: the live command centre (server-sent
events, ``citygrid.cases.feed``) reads ``case_events`` with a cursor on ``id`` filtered by
grid-code scope; on PostgreSQL a trigger on the table (migration 0009) sends the NOTIFY that
wakes it, in the writing transaction.

Events carry no personal data (no reporter contact, no description): a listener that needs
more reads the case through the service, scope-checked.

Ids are assigned at insert, and on PostgreSQL transactions may commit out of id order; the
feed holds later ids back until an earlier missing one can no longer appear. It relies on
this: a transaction writes its case rows before it emits (so it has a transaction id before
it takes an event id). Every caller of ``emit`` in the service does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from citygrid.cases import repository


@dataclass(frozen=True, slots=True)
class CaseCreated:
    """A case was reported.

    Fields: ``case_id`` (row id, for cursors and joins), ``ref`` (opaque id for URLs),
    ``category`` (code, e.g. ``C0201``), ``priority``, ``state`` (``reported``),
    ``grid_code`` (15 digits, the scope key), ``department`` (routed), ``source``,
    ``lon`` / ``lat`` (WGS 84), ``at`` (UTC).
    """

    name: ClassVar[str] = "case.created"

    case_id: int
    ref: str
    category: str
    priority: str
    state: str
    grid_code: str
    department: str
    source: str
    lon: float
    lat: float
    at: datetime


@dataclass(frozen=True, slots=True)
class CaseChanged:
    """A case moved (or was escalated, or someone said "me too").

    Fields: ``case_id``, ``ref``, ``grid_code`` as in ``CaseCreated``; ``action`` (an
    ``Action`` value or ``me_too``); ``from_state`` / ``to_state`` (equal for escalation and
    "me too"); ``department`` (current); ``deadline_at`` (UTC or None); ``overdue_escalated``
    (True once escalated); ``rework_count``; ``me_too_count``; ``actor_role`` (never the
    actor's name: the feed is broadcast); ``at`` (UTC).
    """

    name: ClassVar[str] = "case.changed"

    case_id: int
    ref: str
    grid_code: str
    action: str
    from_state: str
    to_state: str
    department: str
    deadline_at: datetime | None
    overdue_escalated: bool
    rework_count: int
    me_too_count: int
    actor_role: str
    at: datetime


CaseEvent = CaseCreated | CaseChanged


def _jsonable(event: CaseEvent) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in asdict(event).items()
    }


def emit(session: Session, event: CaseEvent) -> None:
    """Write an event in the current transaction (it commits, or vanishes, with the change)."""
    repository.insert_event(
        session,
        name=event.name,
        case_id=event.case_id,
        grid_code=event.grid_code,
        at=event.at,
        payload=_jsonable(event),
    )
