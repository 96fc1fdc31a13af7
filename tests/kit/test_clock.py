"""The city's day: dates are local dates in China Standard Time, whatever the server's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from citygrid.kit.clock import CHINA_STANDARD_TIME, local_date, local_today
from citygrid.registry.schemas import check_person_consistency
from tests.registry.factories import person_data


def test_half_past_midnight_in_guangzhou_is_the_next_day_of_the_utc_evening() -> None:
    evening_utc = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)

    assert local_date(evening_utc) == date(2026, 12, 8)
    assert local_date(evening_utc - timedelta(minutes=31)) == date(2026, 12, 7)


def test_today_is_the_date_in_china_now() -> None:
    before = datetime.now(CHINA_STANDARD_TIME).date()
    today = local_today()
    after = datetime.now(CHINA_STANDARD_TIME).date()

    assert today in (before, after)


def test_a_death_today_in_the_city_is_not_in_the_future() -> None:
    # From 16:00 UTC the city's today is the server's tomorrow: a death reported just after
    # midnight in Guangzhou was once refused as in the future.
    data = person_data("440104001001001")
    birth_date, _sex = check_person_consistency(
        id_number=data["id_number"],
        birth_date=None,
        sex=None,
        status="deceased",
        died_on=local_today(),
        household_id=None,
        relation_to_head=None,
    )
    assert birth_date < local_today()
