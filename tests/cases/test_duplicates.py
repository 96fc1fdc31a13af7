"""Duplicates: a new report of the same class nearby and recent is suggested at
registration; "me too" counts each reporter once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.cases import service
from citygrid.cases.models import Case
from citygrid.kit.actor import Actor
from citygrid.territory.locator import Locator
from tests.cases.conftest import DISPATCHER, HOUSING, NEIGHBOUR, TILE_GRID, ZHANG
from tests.cases.helpers import file_case, step
from tests.fixtures_territory import point_in_grid

ActAs = Callable[[Actor], None]
T0 = datetime(2025, 11, 17, 2, 0, tzinfo=UTC)
# Floor tiles: radius 30 m, window 168 h. 0.0001 degree of latitude is about 11 m.
LON, LAT = point_in_grid(TILE_GRID)
HOTLINE = Actor(name="hotline.01", role="dispatcher", scopes=("440104",))


def tile_at(
    session: Session, locator: Locator, *, north_m: float = 0, hours: float = 0, **extra: str
) -> Case:
    return file_case(
        session,
        HOTLINE,
        locator,
        now=T0 + timedelta(hours=hours),
        lat=LAT + north_m / 111_320,
        lon=LON,
        **extra,
    )


def test_a_second_report_of_the_tile_nearby_is_suggested(city: Session, locator: Locator) -> None:
    first = tile_at(city, locator)
    second = tile_at(city, locator, north_m=20, hours=3)

    suggestions = service.suggest_duplicates(city, DISPATCHER, case_ref=second.ref)

    assert [item.case.ref for item in suggestions] == [first.ref]
    assert suggestions[0].distance_m == pytest.approx(20, abs=0.5)


@pytest.mark.parametrize(
    ("north_m", "hours", "category", "why"),
    [
        (45, 0, "C0201", "farther than the 30 m radius"),
        (0, 200, "C0201", "later than the 168 h window"),
        (0, -200, "C0201", "earlier than the 168 h window"),
        (0, 1, "C0101", "another category"),
    ],
)
def test_reports_outside_radius_window_or_category_are_not_suggested(
    city: Session, locator: Locator, north_m: float, hours: float, category: str, why: str
) -> None:
    first = tile_at(city, locator)
    other = tile_at(city, locator, north_m=north_m, hours=hours, category=category)

    assert service.suggest_duplicates(city, DISPATCHER, case_ref=other.ref) == [], why
    assert service.suggest_duplicates(city, DISPATCHER, case_ref=first.ref) == [], why


def test_closed_cases_are_not_suggested(city: Session, locator: Locator) -> None:
    first = tile_at(city, locator)
    for actor, action, fields in (
        (DISPATCHER, "register", {}),
        (DISPATCHER, "dispatch", {}),
        (HOUSING, "accept", {}),
        (HOUSING, "feedback", {"note": "done"}),
        (ZHANG, "verify", {"result": "pass"}),
    ):
        step(city, actor, first, action, **fields)
    second = tile_at(city, locator, north_m=5, hours=1)

    assert service.suggest_duplicates(city, DISPATCHER, case_ref=second.ref) == []


def test_the_dispatcher_rejects_a_duplicate_and_the_original_counts_its_reporter(
    city: Session, locator: Locator, client: TestClient, act_as: ActAs
) -> None:
    first = file_case(city, ZHANG, locator)
    second = file_case(city, HOTLINE, locator)
    act_as(DISPATCHER)

    suggested = client.get(f"/api/v1/cases/{second.ref}/duplicates").json()["items"]
    rejected = client.post(
        f"/api/v1/cases/{second.ref}/transitions",
        json={"action": "reject", "duplicate_of": first.ref, "note": "same tiles"},
    )
    original = client.get(f"/api/v1/cases/{first.ref}").json()

    assert [item["case"]["id"] for item in suggested] == [first.ref]
    assert suggested[0]["distance_m"] == 0
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["state"] == "rejected"
    assert rejected.json()["duplicate_of"] == first.ref
    assert rejected.json()["transitions"][-1]["data"] == {
        "reason": "duplicate",
        "duplicate_of": first.ref,
    }
    assert original["me_too_count"] == 1


def test_a_case_cannot_duplicate_itself_or_a_closed_case(
    city: Session, client: TestClient, locator: Locator, act_as: ActAs
) -> None:
    case = file_case(city, ZHANG, locator)
    rejected = file_case(city, HOTLINE, locator)
    step(city, DISPATCHER, rejected, "reject", note="below criterion")
    act_as(DISPATCHER)

    for original in (case.ref, rejected.ref):
        response = client.post(
            f"/api/v1/cases/{case.ref}/transitions",
            json={"action": "reject", "duplicate_of": original},
        )
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["field"] == "duplicate_of"


def test_me_too_counts_each_reporter_once(
    city: Session, client: TestClient, locator: Locator, act_as: ActAs
) -> None:
    case = file_case(city, ZHANG, locator)
    neighbour = Actor(name=NEIGHBOUR.name, role="grid_worker", scopes=("440104001",))

    act_as(neighbour)
    first = client.post(f"/api/v1/cases/{case.ref}/me-too")
    second = client.post(f"/api/v1/cases/{case.ref}/me-too")
    act_as(DISPATCHER)
    third = client.post(f"/api/v1/cases/{case.ref}/me-too")
    act_as(ZHANG)
    own = client.post(f"/api/v1/cases/{case.ref}/me-too")

    assert [r.json()["added"] for r in (first, second, third, own)] == [True, False, True, False]
    assert own.json()["me_too_count"] == 2
    act_as(DISPATCHER)
    assert client.get(f"/api/v1/cases/{case.ref}").json()["me_too_count"] == 2


def test_me_too_on_a_closed_case_is_refused(
    city: Session, client: TestClient, locator: Locator, act_as: ActAs
) -> None:
    case = file_case(city, ZHANG, locator)
    step(city, DISPATCHER, case, "reject", note="below criterion")
    act_as(DISPATCHER)

    response = client.post(f"/api/v1/cases/{case.ref}/me-too")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "case_not_open"
    assert client.get(f"/api/v1/cases/{case.ref}").json()["me_too_count"] == 0


def test_me_too_outside_the_territory_is_not_found(
    city: Session, client: TestClient, locator: Locator, act_as: ActAs
) -> None:
    case = file_case(city, ZHANG, locator)
    act_as(NEIGHBOUR)

    assert client.post(f"/api/v1/cases/{case.ref}/me-too").status_code == 404
    assert client.get(f"/api/v1/cases/{case.ref}/duplicates").status_code == 404
