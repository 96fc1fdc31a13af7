"""Routing: the catalogue names the department; a district may override it, edited by
administrators."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.cases import service
from citygrid.cases.catalogue import load_catalogue
from citygrid.kit.actor import Actor
from tests.cases.conftest import ADMIN, DISPATCHER, ZHANG
from tests.cases.helpers import tile_report

ActAs = Callable[[Actor], None]

YUEXIU_TILES = {"district_code": "440104", "category": "C0201", "department": "urban-management"}


def test_a_district_sends_floor_tiles_to_urban_management(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ADMIN)
    saved = client.put("/api/v1/cases/category-overrides", json=YUEXIU_TILES)
    act_as(ZHANG)
    case = client.post("/api/v1/cases", json=tile_report()).json()
    act_as(DISPATCHER)
    client.post(f"/api/v1/cases/{case['id']}/transitions", json={"action": "register"})
    dispatched = client.post(
        f"/api/v1/cases/{case['id']}/transitions", json={"action": "dispatch"}
    ).json()

    assert saved.status_code == 200, saved.text
    assert saved.json()["updated_by"] == "admin"
    assert case["department"] == "urban-management"
    assert dispatched["department"] == "urban-management"
    category = load_catalogue().get("C0201")
    assert category is not None
    assert service.route_department(city, category=category, district_code="440105") == (
        "housing-construction"
    )


def test_an_override_is_changed_listed_and_removed(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ADMIN)
    client.put("/api/v1/cases/category-overrides", json=YUEXIU_TILES)
    changed = client.put(
        "/api/v1/cases/category-overrides", json={**YUEXIU_TILES, "department": "transport"}
    )
    listed = client.get("/api/v1/cases/category-overrides").json()["items"]
    removed = client.delete("/api/v1/cases/category-overrides/440104/C0201")
    again = client.delete("/api/v1/cases/category-overrides/440104/C0201")
    act_as(ZHANG)
    case = client.post("/api/v1/cases", json=tile_report()).json()

    assert changed.json()["department"] == "transport"
    assert [(item["district_code"], item["category"], item["department"]) for item in listed] == [
        ("440104", "C0201", "transport")
    ]
    assert (removed.status_code, again.status_code) == (204, 404)
    assert case["department"] == "housing-construction"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"category": "C9999"}, "category"),
        ({"department": "ministry-of-magic"}, "department"),
        ({"district_code": "440199"}, "district_code"),  # no such district
        ({"district_code": "440104001"}, "district_code"),  # a street
        ({"district_code": "4401"}, "district_code"),
    ],
)
def test_a_bad_override_names_the_field(
    city: Session, client: TestClient, act_as: ActAs, change: dict[str, Any], field: str
) -> None:
    act_as(ADMIN)

    response = client.put("/api/v1/cases/category-overrides", json={**YUEXIU_TILES, **change})

    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == [field]
    assert client.get("/api/v1/cases/category-overrides").json()["items"] == []


def test_only_administrators_change_the_routing(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    put = client.put("/api/v1/cases/category-overrides", json=YUEXIU_TILES)
    delete = client.delete("/api/v1/cases/category-overrides/440104/C0201")

    listed = client.get("/api/v1/cases/category-overrides")
    act_as(ADMIN)
    stored = client.get("/api/v1/cases/category-overrides").json()["items"]

    assert (put.status_code, delete.status_code) == (403, 403)
    # Who changed the routing when is the administrators' to see.
    assert listed.status_code == 403
    assert stored == []
