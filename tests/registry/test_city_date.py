"""The registry's "today" is the city's (China Standard Time), not the server's: from 16:00
UTC a death or a birth of the city's today was refused as "in the future" (the demo's death
story, and its browser test, failed every evening UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from citygrid.kit import models as kit_models
from citygrid.kit.clock import local_today
from citygrid.registry.idnumber import IdNumberError, make_id_number, validate_id_number
from citygrid.registry.schemas import FieldProblem, check_person_consistency

EVENING_UTC = datetime(2026, 12, 7, 20, 0, tzinfo=UTC)  # 04:00 on 8 December in the city
CITY_TODAY = date(2026, 12, 8)


@pytest.fixture(autouse=True)
def evening_in_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kit_models, "utcnow", lambda: EVENING_UTC)


def _death(died_on: date) -> None:
    check_person_consistency(
        id_number=make_id_number("440104", date(1940, 5, 1), 11),
        birth_date=None,
        sex=None,
        status="deceased",
        died_on=died_on,
        household_id=None,
        relation_to_head=None,
    )


def test_today_is_the_city_s_date() -> None:
    assert local_today() == CITY_TODAY


def test_a_death_on_the_city_s_today_is_accepted_and_tomorrow_is_refused() -> None:
    _death(CITY_TODAY)

    with pytest.raises(FieldProblem) as refused:
        _death(date(2026, 12, 9))
    assert (refused.value.field, refused.value.reason) == ("died_on", "in the future")


def test_a_child_born_on_the_city_s_today_has_a_valid_id_number() -> None:
    assert validate_id_number(make_id_number("440104", CITY_TODAY, 12)).birth_date == CITY_TODAY

    with pytest.raises(IdNumberError):
        validate_id_number(make_id_number("440104", date(2026, 12, 9), 12))
