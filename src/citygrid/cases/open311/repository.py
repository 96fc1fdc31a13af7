"""Every query of the Open311 door: keys, the Open311 side of cases, and the request lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from citygrid.cases.models import Case, CaseState
from citygrid.cases.open311.models import Open311Key, Open311Request

# ----------------------------------------------------------------------------- keys


def key_by_hash(session: Session, key_hash: str) -> Open311Key | None:
    """The key with this hash, revoked or not."""
    return session.scalars(select(Open311Key).where(Open311Key.key_hash == key_hash)).one_or_none()


def key_by_prefix(session: Session, prefix: str) -> Open311Key | None:
    """The key with this prefix."""
    return session.scalars(select(Open311Key).where(Open311Key.prefix == prefix)).one_or_none()


def keys(session: Session) -> list[Open311Key]:
    """Every key, oldest first."""
    return list(session.scalars(select(Open311Key).order_by(Open311Key.id)))


def add(session: Session, *rows: Any) -> None:
    """Add new rows and flush (ids are assigned)."""
    session.add_all(rows)
    session.flush()


# ----------------------------------------------------------------------------- requests


_INSERT_REQUEST = insert(cast(Table, Open311Request.__table__))


def insert_request(session: Session, values: dict[str, Any]) -> None:
    """Insert the Open311 side of a new case (Core: the intake hot path)."""
    session.execute(_INSERT_REQUEST, values)


def request_of_case(session: Session, case_id: int) -> Open311Request | None:
    """The Open311 side of a case, if it came in through Open311."""
    return session.scalars(
        select(Open311Request).where(Open311Request.case_id == case_id)
    ).one_or_none()


def case_ref_by_token(session: Session, token: str) -> str | None:
    """The reference of the case a token stands for."""
    statement = (
        select(Case.ref)
        .join(Open311Request, Open311Request.case_id == Case.id)
        .where(Open311Request.token == token)
    )
    return session.scalars(statement).one_or_none()


#: What a listed request needs of a case, and the media link of its Open311 side.
REQUEST_COLUMNS = (
    Case.ref,
    Case.state,
    Case.category,
    Case.priority,
    Case.description,
    Case.source,
    Case.department,
    Case.reported_at,
    Case.updated_at,
    Case.deadline_at,
    Case.duplicate_of,
    Case.address,
    Case.lat,
    Case.lon,
    Open311Request.media_url,
)

# Core rows, not ORM objects: a page of 1,000 requests is read, never changed.
_LISTED = select(*REQUEST_COLUMNS).outerjoin(Open311Request, Open311Request.case_id == Case.id)


def cases_by_refs(session: Session, refs: Sequence[str]) -> list[Any]:
    """Rows of ``REQUEST_COLUMNS`` of the cases with these references, in the order asked."""
    if not refs:
        return []
    rows = session.execute(_LISTED.where(Case.ref.in_(set(refs)))).all()
    position = {ref: index for index, ref in enumerate(refs)}
    return sorted(rows, key=lambda row: position[row.ref])


def cases_reported_between(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    categories: Sequence[str] | None,
    states: Sequence[CaseState] | None,
    limit: int,
) -> list[Any]:
    """Rows of ``REQUEST_COLUMNS`` of cases reported in ``[start, end]``, newest first."""
    statement = _LISTED.where(Case.reported_at.between(start, end))
    if categories is not None:
        statement = statement.where(Case.category.in_(categories))
    if states is not None:
        statement = statement.where(Case.state.in_(states))
    statement = statement.order_by(Case.reported_at.desc(), Case.id.desc()).limit(limit)
    return list(session.execute(statement).all())
