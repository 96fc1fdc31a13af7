"""The evaluation's queries: SQL aggregations over ``cases`` (Core, no ORM objects).

One scan of the covering index ``ix_cases_evaluation`` counts every rate's numerator and
denominator per group. The 90th percentile of the handling time (continuous, with linear
interpolation between ranks, as SQL's ``percentile_cont``) comes from ``percentile_cont``
on PostgreSQL. SQLite has no percentile function and its window functions need a sort of
the whole cohort per grouping (measured 2-3 times slower than the scan itself); there the
same GROUP BY gathers each group's hours with an aggregate of our own
(``citygrid_hours``, registered on the connection), and the percentiles of the groups and
of the total are interpolated from those values, so one scan answers everything.
"""

from __future__ import annotations

import array
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import ColumnElement, Select, Table, and_, case, func, or_, select, true
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

_HOURS_AGGREGATE = "citygrid_hours"


class _GatherHours:
    """SQLite aggregate: the non-null values of a group as packed doubles."""

    def __init__(self) -> None:
        self.values = array.array("d")

    def step(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    def finalize(self) -> bytes:
        return self.values.tobytes()


@dataclass(frozen=True, slots=True)
class EvaluationData:
    """The counts of each group, their 90th percentiles and the total's."""

    groups: list[Any]
    p90: dict[str, float]
    total_p90: float | None


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


def _count_columns(now: datetime) -> list[Any]:
    # A case's state says how far it got (a return to registered clears the dispatch, a
    # rework goes back to handling with rework_count > 0), so no timestamp column is read:
    # every column here is in ix_cases_evaluation.
    state = _C.state
    return [
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


def _percentile(values: np.ndarray[Any, Any]) -> float | None:
    # numpy's default "linear" method is percentile_cont's definition.
    return float(np.percentile(values, PERCENTILE * 100)) if values.size else None


def evaluation_data(
    session: Session,
    *,
    group_by: str,
    start: datetime,
    end: datetime,
    scopes: Sequence[str] | None,
    department: str | None,
    now: datetime,
) -> EvaluationData:
    """Per group (``key``): reported, registered, rejected, dispatched, handled, closed,
    closed_on_time, reworked, overdue, timed (cases with a handling time) and hours_sum;
    the 90th percentile of the handling hours per group and of the whole cohort."""
    key = GROUP_COLUMNS[group_by]
    where = _cohort(start=start, end=end, scopes=scopes, department=department)
    columns = [key.label("key"), *_count_columns(now)]
    if session.get_bind().dialect.name != "postgresql":
        driver = session.connection().connection.driver_connection
        cast(sqlite3.Connection, driver).create_aggregate(
            _HOURS_AGGREGATE, 1, cast(Any, _GatherHours)
        )
        hours = getattr(func, _HOURS_AGGREGATE)(_C.handling_hours).label("hours")
        rows = list(session.execute(select(*columns, hours).where(*where).group_by(key)))
        arrays = {str(row.key): np.frombuffer(row.hours, dtype=np.float64) for row in rows}
        p90 = {
            k: value
            for k, value in ((k, _percentile(a)) for k, a in arrays.items())
            if value is not None
        }
        everything = np.concatenate(list(arrays.values())) if arrays else np.empty(0)
        return EvaluationData(rows, p90, _percentile(everything))
    rows = list(session.execute(select(*columns).where(*where).group_by(key)))
    value: Any = func.percentile_cont(PERCENTILE).within_group(_C.handling_hours)
    timed = [*where, _C.handling_hours.is_not(None)]
    grouped: Select[Any] = select(key.label("key"), value.label("p")).where(*timed).group_by(key)
    p90 = {str(row.key): float(row.p) for row in session.execute(grouped)}
    total = session.execute(select(value).where(*timed)).scalar_one_or_none()
    return EvaluationData(rows, p90, None if total is None else float(total))
