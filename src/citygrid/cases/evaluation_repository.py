"""The evaluation's queries: SQL aggregations over ``cases`` (Core, no ORM objects).

One scan counts every rate's numerator and denominator per group; a second computes the
90th percentile of the handling time per group (``percentile_cont`` on PostgreSQL, the same
linear interpolation between ranks from window functions on SQLite, which has no
percentile function).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    and_,
    case,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy import (
    cast as sql_cast,
)
from sqlalchemy.orm import Session

from citygrid.cases.models import DEADLINE_STATES, Case
from citygrid.cases.repository import scope_condition

PERCENTILE = 0.9

_CLOSED = ["closed", "evaluated"]
_HANDLED = ["handled", *_CLOSED]
_DISPATCHED = ["dispatched", "handling", *_HANDLED]
_DEADLINE = [state.value for state in DEADLINE_STATES]

_CASES = cast(Table, Case.__table__)
_C = _CASES.c

# Street and community are prefixes of the grid code (the index has the grid code, not
# the street_code and community_code columns).
GROUP_COLUMNS: dict[str, Any] = {
    "department": _C.department,
    "street": func.substr(_C.grid_code, 1, 9),
    "community": func.substr(_C.grid_code, 1, 12),
    "grid": _C.grid_code,
}


def _cohort(
    *, start: datetime, end: datetime, scopes: Sequence[str] | None, department: str | None
) -> list[ColumnElement[bool]]:
    """Cases reported in [start, end) within the scopes, less those rejected as duplicates."""
    conditions: list[ColumnElement[bool]] = [
        _C.reported_at >= start,
        _C.reported_at < end,
        _C.duplicate_of.is_(None),
        scope_condition(scopes),
    ]
    if department is not None:
        conditions.append(_C.department == department)
    return conditions


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def counts(
    session: Session,
    *,
    group_by: str | None,
    start: datetime,
    end: datetime,
    scopes: Sequence[str] | None,
    department: str | None,
    now: datetime,
) -> list[Any]:
    """Per group (or for the whole cohort when ``group_by`` is None): ``key``, reported,
    registered, rejected, dispatched, handled, closed, closed_on_time, reworked, overdue,
    timed (cases with a handling time) and hours_sum."""
    # A case's state says how far it got (a return to registered clears the dispatch, a
    # rework goes back to handling with rework_count > 0), so no timestamp column is read:
    # every column here is in ix_cases_evaluation.
    state = _C.state
    columns: list[Any] = [
        func.count().label("reported"),
        _count_if(state.not_in(["reported", "rejected"])).label("registered"),
        _count_if(state == "rejected").label("rejected"),
        _count_if(state.in_(_DISPATCHED)).label("dispatched"),
        _count_if(or_(state.in_(_HANDLED), and_(state == "handling", _C.rework_count > 0))).label(
            "handled"
        ),
        _count_if(state.in_(_CLOSED)).label("closed"),
        _count_if(and_(state.in_(_CLOSED), _C.closed_on_time == true())).label("closed_on_time"),
        _count_if(_C.rework_count > 0).label("reworked"),
        _count_if(and_(state.in_(_DEADLINE), _C.deadline_at < now)).label("overdue"),
        func.count(_C.handling_hours).label("timed"),
        func.coalesce(func.sum(_C.handling_hours), 0.0).label("hours_sum"),
    ]
    where = _cohort(start=start, end=end, scopes=scopes, department=department)
    statement: Select[Any]
    if group_by is None:
        statement = select(literal("").label("key"), *columns).where(*where)
    else:
        key = GROUP_COLUMNS[group_by]
        statement = select(key.label("key"), *columns).where(*where).group_by(key)
    return list(session.execute(statement))


def percentiles(
    session: Session,
    *,
    group_by: str | None,
    start: datetime,
    end: datetime,
    scopes: Sequence[str] | None,
    department: str | None,
) -> dict[str, float]:
    """The 90th percentile (continuous, linear interpolation) of the handling hours per group
    key ("" for the whole cohort); groups without a handled case are absent."""
    where = [
        *_cohort(start=start, end=end, scopes=scopes, department=department),
        _C.handling_hours.is_not(None),
    ]
    hours = _C.handling_hours
    key: Any = GROUP_COLUMNS[group_by] if group_by is not None else None
    if session.get_bind().dialect.name == "postgresql":
        value: Any = func.percentile_cont(PERCENTILE).within_group(hours)
        if key is None:
            statement: Select[Any] = select(literal("").label("key"), value.label("p")).where(
                *where
            )
        else:
            statement = select(key.label("key"), value.label("p")).where(*where).group_by(key)
    else:
        partition = [key] if key is not None else None
        ranked = (
            select(
                (key if key is not None else literal("")).label("key"),
                hours.label("hours"),
                func.row_number().over(partition_by=partition, order_by=hours).label("rank"),
                func.count().over(partition_by=partition).label("n"),
            )
            .where(*where)
            .subquery()
        )
        # percentile_cont: position 1 + p (n - 1), between ranks floor(position) and the next.
        position = 1 + PERCENTILE * (ranked.c.n - 1)
        low = sql_cast(position, Integer)  # positive: truncation is floor
        fraction = position - low
        value = func.sum(
            case(
                (ranked.c.rank == low, ranked.c.hours * (1 - fraction)),
                (ranked.c.rank == low + 1, ranked.c.hours * fraction),
                else_=0.0,
            )
        )
        statement = (
            select(ranked.c.key, value.label("p"))
            .where(ranked.c.rank.between(low, low + 1))
            .group_by(ranked.c.key)
        )
    # Without a group, an empty cohort still gives one row (NULL on PostgreSQL).
    return {str(row.key): float(row.p) for row in session.execute(statement) if row.p is not None}
