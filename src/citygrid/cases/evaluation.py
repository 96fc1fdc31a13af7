"""The evaluation (综合评价) of case handling per department, street, community and grid.

Definitions (see docs/evaluation.md):

- The cohort is the cases *reported* in the period (``from`` to ``to``, whole days in China
  Standard Time, both included) whose grid lies in the caller's territory, less the reports
  rejected as duplicates of another case (counted on the original as a "me too", so counting
  them again would punish a street for its attentive residents). A department officer sees
  the cases of their own department only.
- 立案率 registration rate = registered / reported (a rejection as not meeting the
  registration criterion counts in the denominator).
- 结案率 closure rate = closed / registered, closed meaning a verification passed
  (closed or evaluated now).
- 按期结案率 on-time closure rate = cases closed no later than their working-time deadline /
  registered.
- 返工率 rework rate = cases the verifier sent back at least once / cases the department
  answered at least once.
- Handling time: working hours (08:30-12:00, 14:00-18:00 on Chinese working days) from the
  last dispatch to the last feedback, kept per case at feedback; mean and 90th percentile
  (continuous, as ``percentile_cont``) over the handled cases.

Every figure is computed by SQL aggregation over the territorial range of grid codes
(``citygrid.cases.evaluation_repository``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session

from citygrid.access.models import Role
from citygrid.cases import evaluation_repository as repository
from citygrid.cases.departments import department_label
from citygrid.cases.evaluation_schemas import EvaluationRead, EvaluationRow, GroupBy
from citygrid.kit.actor import Actor
from citygrid.kit.clock import CHINA_STANDARD_TIME
from citygrid.kit.errors import ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.models import utcnow
from citygrid.territory import service as territory

GROUP_BYS: tuple[GroupBy, ...] = ("department", "street", "community", "grid")
DEFAULT_DAYS = 30
MAX_DAYS = 3660
SYSTEM_ROLE = "system"


@dataclass(frozen=True, slots=True)
class Period:
    """Whole days in China Standard Time, both included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        """The first moment of the period."""
        return datetime.combine(self.first, time.min, CHINA_STANDARD_TIME)

    @property
    def end(self) -> datetime:
        """The first moment after the period."""
        return datetime.combine(self.last + timedelta(days=1), time.min, CHINA_STANDARD_TIME)


def _day(value: str | None, field: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed.one(field, _("must be a date (YYYY-MM-DD)")) from None


def parse_group_by(value: str | None) -> GroupBy:
    """The grouping, checked (422 naming ``group_by`` otherwise)."""
    for group_by in GROUP_BYS:
        if value == group_by:
            return group_by
    if value is None or not value.strip():
        return "department"
    raise ValidationFailed.one("group_by", _("use department, street, community or grid"))


def parse_period(date_from: str | None, date_to: str | None, *, now: datetime) -> Period:
    """The period from two optional YYYY-MM-DD days (default: the last 30 days)."""
    first = _day(date_from, "from")
    last = _day(date_to, "to")
    today = now.astimezone(CHINA_STANDARD_TIME).date()
    if last is None:
        last = max(today, first) if first is not None else today
    if first is None:
        first = last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise ValidationFailed.one("from", _("must not be after to"))
    if (last - first).days >= MAX_DAYS:
        raise ValidationFailed.one("from", _("the period is longer than ten years"))
    return Period(first, last)


def _scopes(actor: Actor) -> tuple[str, ...] | None:
    return None if actor.role == SYSTEM_ROLE else tuple(p for p in actor.scopes if p)


def _rate(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _row(counts: Any, name: str, p90: float | None) -> EvaluationRow:
    reported = int(counts.reported)
    registered = int(counts.registered)
    handled = int(counts.handled)
    closed = int(counts.closed)
    on_time = int(counts.closed_on_time)
    reworked = int(counts.reworked)
    timed = int(counts.timed)
    return EvaluationRow(
        key=str(counts.key),
        name=name,
        reported=reported,
        registered=registered,
        rejected=int(counts.rejected),
        dispatched=int(counts.dispatched),
        handled=handled,
        closed=closed,
        closed_on_time=on_time,
        reworked=reworked,
        overdue=int(counts.overdue),
        registration_rate=_rate(registered, reported),
        closure_rate=_rate(closed, registered),
        on_time_closure_rate=_rate(on_time, registered),
        rework_rate=_rate(reworked, handled),
        handling_hours_avg=float(counts.hours_sum) / timed if timed else None,
        handling_hours_p90=p90,
    )


_COUNTED = (
    "reported",
    "registered",
    "rejected",
    "dispatched",
    "handled",
    "closed",
    "closed_on_time",
    "reworked",
    "overdue",
    "timed",
    "hours_sum",
)


def _sum(rows: list[Any]) -> SimpleNamespace:
    """The total of the groups' counts (every case is in exactly one group)."""
    total = SimpleNamespace(key="", **{name: 0 for name in _COUNTED})
    for row in rows:
        for name in _COUNTED:
            setattr(total, name, getattr(total, name) + (getattr(row, name) or 0))
    return total


def _names(session: Session, group_by: GroupBy, keys: list[str]) -> dict[str, str]:
    if group_by == "department":
        return {key: department_label(key) for key in keys}
    units = territory.unit_names(session, codes=keys)
    return {
        key: localised(units[key].name_zh, units[key].name_en) if key in units else key
        for key in keys
    }


def evaluate(
    session: Session,
    actor: Actor,
    *,
    group_by: GroupBy,
    period: Period,
    now: datetime | None = None,
) -> EvaluationRead:
    """The evaluation of the cases reported in ``period`` in the actor's territory, one row
    per group (largest cohort first) and the total."""
    moment = now if now is not None else utcnow()
    department = actor.department if actor.role == Role.DEPARTMENT_OFFICER.value else None
    query: dict[str, Any] = {
        "start": period.start,
        "end": period.end,
        "scopes": _scopes(actor),
        "department": department,
    }
    data = repository.evaluation_data(session, group_by=group_by, now=moment, **query)
    grouped = data.groups
    p90 = data.p90
    overall = _sum(grouped)
    overall_p90 = data.total_p90
    names = _names(session, group_by, [str(row.key) for row in grouped])
    items = [_row(row, names[str(row.key)], p90.get(str(row.key))) for row in grouped]
    items.sort(key=lambda item: (-item.reported, item.key))
    return EvaluationRead(
        group_by=group_by,
        date_from=period.first,
        date_to=period.last,
        generated_at=moment,
        items=items,
        total=_row(overall, _("Total"), overall_p90),
    )
