"""Every query of the Open311 door: keys, the Open311 side of cases, and the request lists."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
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


_LISTED = select(Case, Open311Request.media_url).outerjoin(
    Open311Request, Open311Request.case_id == Case.id
)


def cases_by_refs(session: Session, refs: Sequence[str]) -> list[tuple[Case, str | None]]:
    """``(Case, media_url)`` of the cases with these references, in the order asked."""
    if not refs:
        return []
    rows = session.execute(_LISTED.where(Case.ref.in_(set(refs)))).all()
    position = {ref: index for index, ref in enumerate(refs)}
    return sorted(((row[0], row[1]) for row in rows), key=lambda row: position[row[0].ref])


def cases_reported_between(
    session: Session,
    *,
    start: datetime,
    end: datetime,
    categories: Sequence[str] | None,
    states: Sequence[CaseState] | None,
    limit: int,
) -> list[tuple[Case, str | None]]:
    """``(Case, media_url)`` of cases reported in ``[start, end]``, newest first."""
    statement = _LISTED.where(Case.reported_at.between(start, end))
    if categories is not None:
        statement = statement.where(Case.category.in_(categories))
    if states is not None:
        statement = statement.where(Case.state.in_(states))
    statement = statement.order_by(Case.reported_at.desc(), Case.id.desc()).limit(limit)
    return [(row[0], row[1]) for row in session.execute(statement).all()]
