"""Working time: case deadlines count only the hours a department is at work.

- Working days are China's: Monday to Friday, minus the public holidays, plus the adjusted
  working days (调休, a Saturday or Sunday worked to bridge a holiday), as published by the
  State Council each year and packaged by ``chinese-calendar``. For a year the package does
  not know yet (it covers 2004 up to the year after its release), weekends only are taken
  off and a warning is logged once per year: update the package when the new year's
  schedule is out.
- Working hours are ``WORK_PERIODS``: 08:30-12:00 and 14:00-18:00, 7.5 hours a day, the
  usual office hours of a Guangdong government department.
- Everything is reckoned in China Standard Time (UTC+8 all year; China has no daylight
  saving time), whatever timezone the arguments come in; results are in the start's zone.
- A working day as a duration (``days=``) is 7.5 working hours: 2 working days from
  Tuesday 10:00 is Thursday 10:00. A deadline that uses up a period exactly ends at the
  period's end (18:00), not at the next morning's start.
"""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import chinese_calendar

from citygrid.kit.clock import CHINA_STANDARD_TIME

logger = logging.getLogger("citygrid.cases.calendar")


WORK_PERIODS: tuple[tuple[time, time], ...] = (
    (time(8, 30), time(12, 0)),
    (time(14, 0), time(18, 0)),
)
"""The working hours of a working day, in China Standard Time."""

WORKDAY_HOURS = sum(
    (datetime.combine(date.min, end) - datetime.combine(date.min, start)).total_seconds() / 3600
    for start, end in WORK_PERIODS
)
"""Working hours in a working day (7.5)."""

_warned_years: set[int] = set()
_warn_lock = threading.Lock()


def _warn_unknown_year(year: int) -> None:
    with _warn_lock:
        if year in _warned_years:
            return
        _warned_years.add(year)
    logger.warning(
        "chinese-calendar has no holiday schedule for %d: counting weekends only; "
        "upgrade the package once the State Council publishes the year's schedule",
        year,
    )


@lru_cache(maxsize=8192)
def is_working_day(day: date) -> bool:
    """True on a Chinese working day (adjusted working days included, holidays excluded)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        _warn_unknown_year(day.year)
        return day.weekday() < 5


def _local(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("working time needs timezone-aware datetimes")
    return moment.astimezone(CHINA_STANDARD_TIME)


def _duration(hours: float | None, days: float | None) -> timedelta:
    if (hours is None) == (days is None):
        raise ValueError("give exactly one of hours= or days=")
    amount = hours if hours is not None else float(days or 0) * WORKDAY_HOURS
    if amount <= 0:
        raise ValueError("a working-time duration must be positive")
    return timedelta(hours=amount)


def add_working_time(
    start: datetime, *, hours: float | None = None, days: float | None = None
) -> datetime:
    """The moment ``hours`` working hours (or ``days`` working days) after ``start``."""
    remaining = _duration(hours, days)
    local = _local(start)
    day = local.date()
    position = local.time()
    while True:
        if is_working_day(day):
            for period_start, period_end in WORK_PERIODS:
                begin = max(position, period_start)
                if begin >= period_end:
                    continue
                moment = datetime.combine(day, begin, CHINA_STANDARD_TIME)
                available = datetime.combine(day, period_end, CHINA_STANDARD_TIME) - moment
                if remaining <= available:
                    return (moment + remaining).astimezone(start.tzinfo)
                remaining -= available
        day += timedelta(days=1)
        position = time(0, 0)


def _working_time_on(day: date, begin: time | None, end: time | None) -> timedelta:
    """Working time on ``day`` between ``begin`` and ``end`` (None: the day's start/end)."""
    if not is_working_day(day):
        return timedelta()
    total = timedelta()
    for period_start, period_end in WORK_PERIODS:
        low = max(period_start, begin) if begin is not None else period_start
        high = min(period_end, end) if end is not None else period_end
        if high > low:
            total += datetime.combine(day, high) - datetime.combine(day, low)
    return total


def working_time_between(first: datetime, second: datetime) -> timedelta:
    """Working time from ``first`` to ``second`` (negative when ``second`` is earlier)."""
    if second < first:
        return -working_time_between(second, first)
    start, stop = _local(first), _local(second)
    start_time = start.time()
    stop_time = stop.time()
    if start.date() == stop.date():
        return _working_time_on(start.date(), start_time, stop_time)
    total = _working_time_on(start.date(), start_time, None)
    day = start.date() + timedelta(days=1)
    full_day = timedelta(hours=WORKDAY_HOURS)
    while day < stop.date():
        if is_working_day(day):
            total += full_day
        day += timedelta(days=1)
    return total + _working_time_on(stop.date(), None, stop_time)
