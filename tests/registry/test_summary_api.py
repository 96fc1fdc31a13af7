"""GET /api/v1/grids/{code}/summary: counts of a grid, in the user's language, no personal data."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.registry.catalogue import component_slugs
from citygrid.territory.models import TerritorialUnit
from tests.registry.factories import GRID, person_data
from tests.registry.test_counts import fill_two_grids


def test_the_summary_counts_what_the_grid_holds(
    city: Session, clerk: Actor, client: TestClient
) -> None:
    fill_two_grids(city, clerk)

    response = client.get(f"/api/v1/grids/{GRID}/summary")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "code",
        "name",
        "name_zh",
        "name_en",
        "buildings",
        "housing_units",
        "households",
        "residents",
        "components",
    }
    assert body["code"] == GRID
    assert (body["buildings"], body["housing_units"], body["households"], body["residents"]) == (
        2,
        3,
        2,
        3,
    )
    assert set(body["components"]) == set(component_slugs())
    assert body["components"]["manhole_cover"] == 2
    assert body["components"]["tree"] == 1


def test_the_summary_holds_no_personal_data(
    city: Session, clerk: Actor, client: TestClient
) -> None:
    data = person_data(GRID, name="欧阳娜娜")
    from citygrid.registry import service

    person = service.create_person(city, clerk, data=data)

    text = client.get(f"/api/v1/grids/{GRID}/summary").text

    for secret in (data["id_number"], "欧阳娜娜", data["mobile"], person.ref):
        assert secret not in text


@pytest.mark.parametrize(
    ("headers", "cookies", "expected"),
    [
        ({"Accept-Language": "en-GB,en;q=0.8"}, {}, "name_en"),
        ({"Accept-Language": "zh-CN,zh;q=0.9"}, {}, "name_zh"),
        ({}, {"citygrid_lang": "en"}, "name_en"),
        ({"Accept-Language": ""}, {}, "name_zh"),
    ],
)
def test_the_name_is_in_the_user_s_language(
    city: Session, client: TestClient, headers: dict, cookies: dict, expected: str
) -> None:
    grid = city.get(TerritorialUnit, GRID)
    assert grid is not None
    client.cookies.clear()
    for name, value in cookies.items():
        client.cookies.set(name, value)

    body = client.get(f"/api/v1/grids/{GRID}/summary", headers=headers).json()

    assert body["name"] == getattr(grid, expected)
    assert body["name_zh"] == grid.name_zh
    assert body["name_en"] == grid.name_en


def test_an_unknown_grid_is_404(city: Session, client: TestClient) -> None:
    response = client.get("/api/v1/grids/440104009009009/summary")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_15_digit_code_that_names_no_grid_is_404(city: Session, client: TestClient) -> None:
    response = client.get(f"/api/v1/grids/{GRID[:12]}000/summary")

    assert response.status_code == 404


@pytest.mark.parametrize("code", ["44010400100100", "4401040010010021", "44010400100100x"])
def test_a_code_that_is_not_15_digits_is_422_naming_code(
    city: Session, client: TestClient, code: str
) -> None:
    english = client.get(f"/api/v1/grids/{code}/summary", headers={"Accept-Language": "en"})
    chinese = client.get(f"/api/v1/grids/{code}/summary", headers={"Accept-Language": "zh-CN"})

    assert english.status_code == chinese.status_code == 422
    error = english.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"] == [{"field": "code", "reason": "must be 15 digits"}]
    assert chinese.json()["error"]["details"][0]["field"] == "code"
