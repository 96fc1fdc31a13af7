"""The city's day: dates are local dates in China Standard Time, whatever the server's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from citygrid.kit.clock import CHINA_STANDARD_TIME, local_date, local_today


def test_half_past_midnight_in_guangzhou_is_the_next_day_of_the_utc_evening() -> None:
    evening_utc = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)

    assert local_date(evening_utc) == date(2026, 12, 8)
    assert local_date(evening_utc - timedelta(minutes=31)) == date(2026, 12, 7)


def test_today_is_the_date_in_china_now() -> None:
    before = datetime.now(CHINA_STANDARD_TIME).date()
    today = local_today()
    after = datetime.now(CHINA_STANDARD_TIME).date()

    assert today in (before, after)
