"""Working time: Chinese holidays, adjusted working days, office hours."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest

from citygrid.cases import calendar
from citygrid.cases.calendar import (
    CHINA_STANDARD_TIME,
    WORKDAY_HOURS,
    add_working_time,
    is_working_day,
    working_time_between,
)


def cst(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=CHINA_STANDARD_TIME)


def test_national_day_2025_is_off_and_its_adjusted_days_are_worked() -> None:
    assert is_working_day(cst(2025, 9, 30).date())  # Tuesday, the eve
    assert not any(is_working_day(cst(2025, 10, day).date()) for day in range(1, 9))
    assert is_working_day(cst(2025, 10, 9).date())
    assert is_working_day(cst(2025, 9, 28).date())  # a Sunday worked
    assert is_working_day(cst(2025, 10, 11).date())  # a Saturday worked
    assert not is_working_day(cst(2025, 10, 12).date())  # an ordinary Sunday


def test_two_working_days_from_the_eve_of_national_day_end_after_the_holiday() -> None:
    dispatched = cst(2025, 9, 30, 10, 0)

    assert add_working_time(dispatched, days=2) == cst(2025, 10, 10, 10, 0)
    assert add_working_time(dispatched, days=1) == cst(2025, 10, 9, 10, 0)


def test_an_adjusted_saturday_counts_as_a_working_day() -> None:
    friday_evening = cst(2025, 10, 10, 17, 0)

    # One hour left on Friday, then Saturday 11 October is worked: 08:30 + 1 h.
    assert add_working_time(friday_evening, hours=2) == cst(2025, 10, 11, 9, 30)


def test_a_friday_afternoon_report_with_four_hours_lands_on_monday_morning() -> None:
    friday = cst(2025, 11, 14, 16, 0)

    assert add_working_time(friday, hours=4) == cst(2025, 11, 17, 10, 30)


def test_the_lunch_break_and_the_night_do_not_count() -> None:
    assert add_working_time(cst(2025, 11, 17, 11, 0), hours=2) == cst(2025, 11, 17, 15, 0)
    assert add_working_time(cst(2025, 11, 17, 12, 30), hours=1) == cst(2025, 11, 17, 15, 0)
    assert add_working_time(cst(2025, 11, 17, 21, 0), hours=1) == cst(2025, 11, 18, 9, 30)
    assert add_working_time(cst(2025, 11, 17, 6, 0), hours=1) == cst(2025, 11, 17, 9, 30)


def test_a_deadline_that_uses_up_the_day_ends_at_six_not_next_morning() -> None:
    assert add_working_time(cst(2025, 11, 17, 8, 30), days=1) == cst(2025, 11, 17, 18, 0)
    assert add_working_time(cst(2025, 11, 17, 14, 0), hours=4) == cst(2025, 11, 17, 18, 0)


def test_the_result_keeps_the_start_s_zone() -> None:
    start = cst(2025, 11, 17, 9, 0).astimezone(UTC)

    deadline = add_working_time(start, hours=1)

    assert deadline.tzinfo == UTC
    assert deadline == cst(2025, 11, 17, 10, 0)


def test_working_time_between_two_moments() -> None:
    assert working_time_between(cst(2025, 9, 30, 10, 0), cst(2025, 10, 10, 10, 0)) == timedelta(
        hours=2 * WORKDAY_HOURS
    )
    assert working_time_between(cst(2025, 11, 14, 16, 0), cst(2025, 11, 17, 10, 30)) == timedelta(
        hours=4
    )
    assert working_time_between(cst(2025, 11, 17, 11, 0), cst(2025, 11, 17, 15, 0)) == timedelta(
        hours=2
    )
    assert working_time_between(cst(2025, 11, 17, 15, 0), cst(2025, 11, 17, 11, 0)) == timedelta(
        hours=-2
    )
    assert working_time_between(cst(2025, 10, 2, 9), cst(2025, 10, 3, 9)) == timedelta()


@pytest.mark.parametrize("hours", [1, 3.5, 7.5, 11, 40])
def test_adding_and_measuring_agree(hours: float) -> None:
    start = cst(2025, 9, 29, 9, 15)

    assert working_time_between(start, add_working_time(start, hours=hours)) == timedelta(
        hours=hours
    )


def test_a_year_the_package_does_not_know_counts_weekends_only_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calendar._warned_years.discard(2099)
    calendar.is_working_day.cache_clear()

    with caplog.at_level(logging.WARNING, logger="citygrid.cases.calendar"):
        # 1 January 2099 is a Thursday: a working day without the holiday schedule.
        assert is_working_day(cst(2099, 1, 1).date())
        assert not is_working_day(cst(2099, 1, 3).date())  # Saturday
        assert add_working_time(cst(2099, 1, 2, 17, 0), hours=2) == cst(2099, 1, 5, 9, 30)

    warnings = [record for record in caplog.records if "2099" in record.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize("arguments", [{}, {"hours": 1, "days": 1}, {"hours": 0}, {"days": -1}])
def test_a_duration_must_be_one_positive_amount(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="hours= or days=|positive"):
        add_working_time(cst(2025, 11, 17, 9), **arguments)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        add_working_time(datetime(2025, 11, 17, 9), hours=1)
