"""Every query of the cases domain. Nothing else in the domain builds a SELECT."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    bindparam,
    false,
    func,
    insert,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, make_transient_to_detached

from citygrid.cases.models import (
    DEADLINE_STATES,
    OPEN_STATES,
    Case,
    CaseEventRecord,
    CaseMeToo,
    CasePhoto,
    CaseState,
    CaseTransition,
    CategoryOverride,
    CategoryOverrideChange,
)

GRID_CODE_LENGTH = 15


def _under(prefix: str, column: Any = None) -> ColumnElement[bool]:
    """``grid_code`` (of cases, or the given column) starts with ``prefix``, as a range its
    B-tree index serves under any collation (codes are digit strings)."""
    column = Case.grid_code if column is None else column
    return cast(ColumnElement[bool], column.between(prefix, prefix.ljust(GRID_CODE_LENGTH, "9")))


def scope_condition(scopes: Sequence[str] | None, column: Any = None) -> ColumnElement[bool]:
    """Rows under any of the prefixes (None: every row; empty: none), on ``cases.grid_code``
    or the given grid-code column."""
    if scopes is None:
        return true()
    if not scopes:
        return false()
    return or_(*(_under(prefix, column) for prefix in scopes))


# ----------------------------------------------------------------------------- cases


def case_by_ref(session: Session, ref: str, *, for_update: bool = False) -> Case | None:
    """The case with a reference (row-locked on PostgreSQL when ``for_update``)."""
    statement = select(Case).where(Case.ref == ref)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).one_or_none()


def case_by_id(session: Session, case_id: int) -> Case | None:
    """The case with a row id."""
    return session.get(Case, case_id)


def case_by_idempotency_key(session: Session, reporter_name: str, key: str) -> Case | None:
    """The case a reporter already filed with this idempotency key."""
    case_id = session.execute(
        _CASE_ID_BY_KEY, {"reporter_name": reporter_name, "key": key}
    ).scalar_one_or_none()
    # Most submits carry a new key: the id probe is cheap, the ORM load only on a repeat.
    return None if case_id is None else session.get(Case, case_id)


_CASES = cast(Table, Case.__table__)
_CASE_ID_BY_KEY = select(_CASES.c.id).where(
    _CASES.c.reporter_name == bindparam("reporter_name"),
    _CASES.c.idempotency_key == bindparam("key"),
)
_CONFLICT_TARGET = [_CASES.c.reporter_name, _CASES.c.idempotency_key]
# One statement per dialect, built once: executed with a parameter dict, its compiled form is
# cached (a statement built with ``.values(...)`` per call would be compiled every time).
_INSERT_CASE: dict[str, Any] = {
    "postgresql": postgresql_insert(_CASES)
    .on_conflict_do_nothing(index_elements=_CONFLICT_TARGET)
    .returning(_CASES.c.id),
    "sqlite": sqlite_insert(_CASES)
    .on_conflict_do_nothing(index_elements=_CONFLICT_TARGET)
    .returning(_CASES.c.id),
}
_INSERT_TRANSITION = insert(cast(Table, CaseTransition.__table__))
_INSERT_EVENT = insert(cast(Table, CaseEventRecord.__table__))


def insert_case(session: Session, values: dict[str, Any]) -> int | None:
    """Insert a case (Core: the intake hot path); its id, or None when the reporter already
    filed a case with this idempotency key (the unique constraint decides, so two racing
    submits make one case without a savepoint)."""
    statement = _INSERT_CASE[session.get_bind().dialect.name]
    case_id = session.execute(statement, values).scalar_one_or_none()
    return None if case_id is None else int(case_id)


def insert_transition(session: Session, values: dict[str, Any]) -> None:
    """Insert a transition row (Core)."""
    session.execute(_INSERT_TRANSITION, values)


def attach(session: Session, case: Case) -> None:
    """Make a case built from the values just inserted a persistent object of the session,
    without reading it back."""
    make_transient_to_detached(case)
    session.add(case)


def refs_by_ids(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """The references of cases by row id."""
    if not ids:
        return {}
    rows = session.execute(select(Case.id, Case.ref).where(Case.id.in_(set(ids))))
    return {row.id: row.ref for row in rows}


def add(session: Session, *rows: Any) -> None:
    """Add new rows and flush (ids are assigned)."""
    session.add_all(rows)
    session.flush()


def list_cases(
    session: Session,
    *,
    scopes: Sequence[str] | None,
    state: CaseState | None,
    code_prefix: str | None,
    department: str | None,
    overdue_at: datetime | None,
    not_overdue_at: datetime | None = None,
    limit: int,
    offset: int,
) -> list[Case]:
    """Cases in scope matching the filters, newest first (``overdue_at``: only cases whose
    deadline had passed then, still with the department; ``not_overdue_at``: only the
    others)."""
    statement = select(Case).where(scope_condition(scopes))
    if state is not None:
        statement = statement.where(Case.state == state)
    if code_prefix is not None:
        statement = statement.where(_under(code_prefix))
    if department is not None:
        statement = statement.where(Case.department == department)
    if overdue_at is not None:
        statement = statement.where(Case.state.in_(DEADLINE_STATES), Case.deadline_at < overdue_at)
    if not_overdue_at is not None:
        # The complement in SQL, so that a page is full and next_offset is right.
        statement = statement.where(
            or_(
                Case.state.not_in(DEADLINE_STATES),
                Case.deadline_at.is_(None),
                Case.deadline_at >= not_overdue_at,
            )
        )
    statement = statement.order_by(Case.id.desc()).limit(limit).offset(offset)
    return list(session.scalars(statement))


def duplicate_candidates(
    session: Session,
    *,
    category: str,
    exclude_id: int,
    since: datetime,
    until: datetime,
    lon_range: tuple[float, float],
    lat_range: tuple[float, float],
    scopes: Sequence[str] | None,
) -> list[Case]:
    """Open, non-duplicate cases of a category reported in a time window inside a box."""
    statement = select(Case).where(
        Case.category == category,
        Case.reported_at.between(since, until),
        Case.id != exclude_id,
        Case.state.in_(OPEN_STATES),
        Case.duplicate_of.is_(None),
        Case.lon.between(*lon_range),
        Case.lat.between(*lat_range),
        scope_condition(scopes),
    )
    return list(session.scalars(statement.order_by(Case.id)))


def overdue(session: Session, *, now: datetime, unescalated: bool, limit: int | None) -> list[Case]:
    """Cases still with their department past the deadline, earliest deadline first."""
    statement = select(Case).where(Case.state.in_(DEADLINE_STATES), Case.deadline_at < now)
    if unescalated:
        # Claimed for escalation: a second worker skips rows the first is escalating.
        statement = statement.where(Case.escalated_at.is_(None)).with_for_update(skip_locked=True)
    statement = statement.order_by(Case.deadline_at, Case.id)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.scalars(statement))


def increment_me_too(session: Session, case_id: int) -> int:
    """Add one to a case's "me too" count in the database (no lost update); the new count."""
    session.execute(
        update(Case)
        .where(Case.id == case_id)
        .values(me_too_count=Case.me_too_count + 1)
        .execution_options(synchronize_session=False)
    )
    count = session.scalar(select(Case.me_too_count).where(Case.id == case_id))
    return int(count or 0)


def insert_me_too(
    session: Session, *, case_id: int, grid_code: str, reporter_name: str, at: datetime
) -> bool:
    """Record that a reporter saw the case too; False if they already had (idempotent,
    also under a race: the unique constraint decides inside a savepoint)."""
    exists = session.scalar(
        select(CaseMeToo.id).where(
            CaseMeToo.case_id == case_id, CaseMeToo.reporter_name == reporter_name
        )
    )
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.execute(
                insert(CaseMeToo).values(
                    case_id=case_id,
                    grid_code=grid_code,
                    reporter_name=reporter_name,
                    created_at=at,
                )
            )
    except IntegrityError:
        return False
    return True


def transitions_of(session: Session, case_id: int) -> list[CaseTransition]:
    """A case's history, oldest first."""
    statement = (
        select(CaseTransition)
        .where(CaseTransition.case_id == case_id)
        .order_by(CaseTransition.at, CaseTransition.id)
    )
    return list(session.scalars(statement))


# ----------------------------------------------------------------------------- overrides


_OVERRIDES = cast(Table, CategoryOverride.__table__)
_OVERRIDES_OF = select(_OVERRIDES).where(
    _OVERRIDES.c.category == bindparam("category"),
    _OVERRIDES.c.district_code.in_(bindparam("codes", expanding=True)),
)


def overrides_for(session: Session, *, category: str, codes: Sequence[str]) -> list[Any]:
    """The override rows of a category under any of the territorial codes (Core rows: the
    intake and dispatch paths read them)."""
    return list(session.execute(_OVERRIDES_OF, {"category": category, "codes": list(codes)}))


def overrides_under(session: Session, codes: Sequence[str]) -> list[CategoryOverride]:
    """Every override of the given territorial codes (the city's and a district's)."""
    statement = select(CategoryOverride).where(CategoryOverride.district_code.in_(list(codes)))
    return list(session.scalars(statement.order_by(CategoryOverride.category)))


def override_changes(session: Session, *, category: str, limit: int) -> list[Any]:
    """The latest changes of a category's overrides, newest first."""
    statement = (
        select(CategoryOverrideChange)
        .where(CategoryOverrideChange.category == category)
        .order_by(CategoryOverrideChange.id.desc())
        .limit(limit)
    )
    return list(session.scalars(statement))


def override_row(session: Session, *, district_code: str, category: str) -> CategoryOverride | None:
    """The override row of a district and category."""
    return session.scalars(
        select(CategoryOverride).where(
            CategoryOverride.district_code == district_code,
            CategoryOverride.category == category,
        )
    ).one_or_none()


def overrides(session: Session) -> list[CategoryOverride]:
    """Every override, by district then category."""
    statement = select(CategoryOverride).order_by(
        CategoryOverride.district_code, CategoryOverride.category
    )
    return list(session.scalars(statement))


def delete_row(session: Session, row: Any) -> None:
    """Delete a row and flush."""
    session.delete(row)
    session.flush()


# ----------------------------------------------------------------------------- events


def insert_event(
    session: Session,
    *,
    name: str,
    case_id: int,
    grid_code: str,
    at: datetime,
    payload: dict[str, Any],
) -> None:
    """Append to the case event log (Core: one cached statement, no ORM bookkeeping)."""
    session.execute(
        _INSERT_EVENT,
        {"name": name, "case_id": case_id, "grid_code": grid_code, "at": at, "payload": payload},
    )


def events_after(session: Session, *, after_id: int, limit: int) -> list[CaseEventRecord]:
    """Events with an id above a cursor, oldest first (for the live feed and the tests)."""
    statement = (
        select(CaseEventRecord)
        .where(CaseEventRecord.id > after_id)
        .order_by(CaseEventRecord.id)
        .limit(limit)
    )
    return list(session.scalars(statement))


# ----------------------------------------------------------------------------- photos


def insert_photos(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert photo rows (one statement)."""
    if rows:
        session.execute(insert(CasePhoto), list(rows))


def photos_of(session: Session, case_id: int) -> list[CasePhoto]:
    """A case's photos, in the order they came."""
    statement = select(CasePhoto).where(CasePhoto.case_id == case_id).order_by(CasePhoto.id)
    return list(session.scalars(statement))


def photo_of_case(session: Session, case_id: int, sha256: str) -> CasePhoto | None:
    """The first photo of a case with this content hash."""
    statement = (
        select(CasePhoto)
        .where(CasePhoto.case_id == case_id, CasePhoto.sha256 == sha256)
        .order_by(CasePhoto.id)
        .limit(1)
    )
    return session.scalars(statement).first()


def max_event_id(session: Session) -> int:
    """The highest committed event id (0 when there is none): the live feed's cheap probe."""
    return int(session.scalar(select(func.max(CaseEventRecord.id))) or 0)


def event_ids_after(session: Session, *, after_id: int, limit: int) -> list[int]:
    """Ids of the events above a cursor, ascending (the feed's gap check; no payloads)."""
    statement = (
        select(CaseEventRecord.id)
        .where(CaseEventRecord.id > after_id)
        .order_by(CaseEventRecord.id)
        .limit(limit)
    )
    return [int(event_id) for event_id in session.scalars(statement)]


def event_ids_between(session: Session, *, low: int, high: int) -> list[int]:
    """Ids of the events in ``[low, high]``, ascending."""
    statement = (
        select(CaseEventRecord.id)
        .where(CaseEventRecord.id.between(low, high))
        .order_by(CaseEventRecord.id)
    )
    return [int(event_id) for event_id in session.scalars(statement)]


def events_in_range(
    session: Session, *, after_id: int, up_to: int, scopes: Sequence[str] | None, limit: int
) -> list[tuple[int, str, dict[str, Any]]]:
    """``(id, name, payload)`` of the events with ``after_id < id <= up_to`` under the scopes
    (filtered in SQL on the indexed grid code), oldest first."""
    statement = (
        select(CaseEventRecord.id, CaseEventRecord.name, CaseEventRecord.payload)
        .where(
            CaseEventRecord.id > after_id,
            CaseEventRecord.id <= up_to,
            scope_condition(scopes, CaseEventRecord.grid_code),
        )
        .order_by(CaseEventRecord.id)
        .limit(limit)
    )
    return [(int(row.id), str(row.name), dict(row.payload)) for row in session.execute(statement)]


def postgresql_snapshot_bounds(session: Session) -> tuple[int, int]:
    """``(xmin, xmax)`` of a fresh PostgreSQL snapshot: every transaction id below xmin has
    finished; every one assigned so far is below xmax."""
    row = session.execute(
        text(
            "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint "
            "FROM pg_current_snapshot() AS s"
        )
    ).one()
    return int(row[0]), int(row[1])


# ----------------------------------------------------------------------------- work lists


def open_cases(session: Session, *, scopes: Sequence[str] | None, limit: int) -> list[Case]:
    """Open cases in scope, newest first (the command centre's map and feed)."""
    statement = (
        select(Case)
        .where(scope_condition(scopes), Case.state.in_(OPEN_STATES))
        .order_by(Case.id.desc())
        .limit(limit)
    )
    return list(session.scalars(statement))


def department_queue(
    session: Session, *, department: str, scopes: Sequence[str] | None, limit: int
) -> list[Case]:
    """A department's dispatched and handling cases in scope, the soonest deadline first."""
    statement = (
        select(Case)
        .where(
            Case.department == department,
            Case.state.in_(DEADLINE_STATES),
            scope_condition(scopes),
        )
        .order_by(Case.deadline_at.is_(None), Case.deadline_at, Case.id)
        .limit(limit)
    )
    return list(session.scalars(statement))


def handled_in_grids(session: Session, *, grid_codes: Sequence[str], limit: int) -> list[Case]:
    """Cases handled by their department and waiting for verification in these grids,
    oldest feedback first."""
    if not grid_codes:
        return []
    statement = (
        select(Case)
        .where(Case.grid_code.in_(list(grid_codes)), Case.state == CaseState.HANDLED)
        .order_by(Case.handled_at, Case.id)
        .limit(limit)
    )
    return list(session.scalars(statement))
