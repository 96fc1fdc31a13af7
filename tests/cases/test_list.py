"""GET /api/v1/cases: the cases of the caller's territory, filtered."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.territory.locator import Locator
from tests.cases.conftest import DISPATCHER, FAR_GRID, STREET_DISPATCHER, TILE_GRID, ZHANG
from tests.cases.helpers import file_case, step

ActAs = Callable[[Actor], None]


@pytest.fixture
def three_cases(city: Session, locator: Locator) -> dict[str, str]:
    tile = file_case(city, ZHANG, locator)
    lamp = file_case(city, DISPATCHER, locator, category="C0105")
    far = file_case(city, DISPATCHER, locator, grid_code=FAR_GRID, category="E0403")
    step(city, DISPATCHER, tile, "register")
    step(city, DISPATCHER, tile, "dispatch")
    return {"tile": tile.ref, "lamp": lamp.ref, "far": far.ref}


def ids(client: TestClient, **params: str) -> list[str]:
    response = client.get("/api/v1/cases", params=params)
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def test_each_sees_the_cases_of_their_territory_newest_first(
    three_cases: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)
    district = ids(client)
    act_as(STREET_DISPATCHER)
    street = ids(client)
    act_as(ZHANG)
    grid = ids(client)

    assert district == [three_cases["far"], three_cases["lamp"], three_cases["tile"]]
    assert street == [three_cases["far"]]
    assert grid == [three_cases["lamp"], three_cases["tile"]]


def test_filters_by_state_territory_and_department(
    three_cases: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    assert ids(client, state="dispatched") == [three_cases["tile"]]
    assert ids(client, grid=TILE_GRID) == [three_cases["lamp"], three_cases["tile"]]
    assert ids(client, grid="440104002") == [three_cases["far"]]
    assert ids(client, department="public-security") == [three_cases["far"]]
    assert ids(client, department="housing-construction", state="dispatched") == [
        three_cases["tile"]
    ]


def test_pages_follow_each_other(
    three_cases: dict[str, str], client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    first = client.get("/api/v1/cases", params={"limit": 2}).json()
    second = client.get("/api/v1/cases", params={"limit": 2, "offset": 2}).json()

    assert len(first["items"]) == 2 and first["next_offset"] == 2
    assert len(second["items"]) == 1 and second["next_offset"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"state": "lost"}, "state"),
        ({"grid": "4401"}, "grid"),
        ({"department": "mi6"}, "department"),
        ({"overdue": "perhaps"}, "overdue"),
        ({"limit": "0"}, "limit"),
        ({"offset": "-1"}, "offset"),
    ],
)
def test_bad_filters_name_the_parameter(
    city: Session, client: TestClient, act_as: ActAs, params: dict[str, str], field: str
) -> None:
    act_as(DISPATCHER)

    response = client.get("/api/v1/cases", params=params)

    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]


def test_not_overdue_pages_are_full_and_next_offset_is_right(
    city: Session, locator: Locator, client: TestClient, act_as: ActAs
) -> None:
    # Three old cases still waiting to be registered (never overdue), then three newer ones
    # dispatched long ago and overdue now: newest first, the overdue ones come first.
    long_ago = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    waiting = [file_case(city, ZHANG, locator, now=long_ago).ref for _ in range(3)]
    for _ in range(3):
        case = file_case(city, ZHANG, locator, now=long_ago)
        step(city, DISPATCHER, case, "register", now=long_ago)
        step(city, DISPATCHER, case, "dispatch", now=long_ago)
    act_as(DISPATCHER)

    first = client.get("/api/v1/cases", params={"overdue": "false", "limit": 2}).json()
    second = client.get(
        "/api/v1/cases", params={"overdue": "false", "limit": 2, "offset": 2}
    ).json()
    overdue = client.get("/api/v1/cases", params={"overdue": "true", "limit": 10}).json()

    assert [item["id"] for item in first["items"]] == waiting[::-1][:2]
    assert first["next_offset"] == 2
    assert [item["id"] for item in second["items"]] == waiting[:1]
    assert second["next_offset"] is None
    assert len(overdue["items"]) == 3 and all(item["overdue"] for item in overdue["items"])
