"""Catalogue administration: an administrator changes a minor class's department, deadlines
and criteria for the whole city or one district; the next case routed or dispatched follows;
everyone signed in reads the catalogue as it applies; the history says who and when."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.cases.calendar import add_working_time
from citygrid.cases.models import CategoryOverride, CategoryOverrideChange
from citygrid.kit.actor import Actor
from citygrid.territory.locator import Locator
from tests.cases.conftest import ADMIN, DISPATCHER, HOUSING, ZHANG
from tests.cases.helpers import file_case, step, tile_report
from tests.fixtures_territory import CITY_CODE, DISTRICT_CODE

ActAs = Callable[[Actor], None]

#: Monday 2 March 2026, 09:00 in China: a working day.
MONDAY_9 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def tiles(client: TestClient, **body: Any) -> Any:
    return client.put("/api/v1/cases/catalogue/C0201", json=body)


def dispatched(city: Session, locator: Locator, **fields: Any) -> Any:
    case = file_case(city, ZHANG, locator, now=MONDAY_9, **fields)
    step(city, DISPATCHER, case, "register", now=MONDAY_9)
    return step(city, DISPATCHER, case, "dispatch", now=MONDAY_9)


def count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_a_shorter_deadline_applies_to_the_next_dispatched_case(
    city: Session, locator: Locator, client: TestClient, act_as: ActAs
) -> None:
    before = dispatched(city, locator)  # high: 2 working days
    before_deadline = before.deadline_at
    act_as(ADMIN)

    saved = tiles(client, district_code=DISTRICT_CODE, deadlines={"high": "6h", "urgent": "2h"})
    after = dispatched(city, locator)
    city.expire(before)

    assert saved.status_code == 200, saved.text
    assert saved.json()["deadlines"] == {"urgent": "2h", "high": "6h"}
    assert saved.json()["updated_by"] == "admin"
    assert after.deadline_at == add_working_time(MONDAY_9, hours=6)  # Monday 16:00
    assert before_deadline == add_working_time(MONDAY_9, days=2)
    assert before.deadline_at == before_deadline  # a dispatched case keeps its deadline


def test_the_district_overrides_the_city_which_overrides_the_file(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ADMIN)
    tiles(
        client, district_code=CITY_CODE, department="urban-management", deadlines={"normal": "4d"}
    )
    tiles(client, district_code=DISTRICT_CODE, department="transport")
    act_as(ZHANG)
    with_both = client.post("/api/v1/cases", json=tile_report()).json()
    in_district = client.get(
        "/api/v1/cases/catalogue/C0201", params={"district_code": DISTRICT_CODE}
    ).json()
    act_as(ADMIN)
    removed = client.delete(f"/api/v1/cases/catalogue/C0201/overrides/{DISTRICT_CODE}")
    act_as(ZHANG)
    with_city = client.post("/api/v1/cases", json=tile_report()).json()
    file_only = client.get("/api/v1/cases/catalogue/C0201").json()

    assert with_both["department"] == "transport"
    assert in_district["department"] == "transport"
    assert in_district["deadlines"]["normal"] == {"amount": 4, "unit": "d"}
    assert in_district["overridden"] == ["department", "deadlines.normal"]
    assert removed.status_code == 204
    assert with_city["department"] == "urban-management"
    assert file_only["department"] == "housing-construction"
    assert file_only["overridden"] == []


def test_criteria_are_edited_and_everyone_signed_in_reads_them(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ADMIN)
    tiles(
        client,
        district_code=DISTRICT_CODE,
        register_zh="人行道砖松动、破损或缺失一块以上",
        register_en="One or more pavement tiles loose, broken or missing",
    )
    act_as(ZHANG)

    catalogue = client.get("/api/v1/cases/catalogue", params={"district_code": DISTRICT_CODE})

    assert catalogue.status_code == 200
    majors = catalogue.json()["majors"]
    tile = next(item for major in majors for item in major["classes"] if item["code"] == "C0201")
    assert tile["register_en"] == "One or more pavement tiles loose, broken or missing"
    assert tile["register_zh"] == "人行道砖松动、破损或缺失一块以上"
    assert tile["close_en"]  # untouched: the file's
    assert tile["overridden"] == ["register_zh", "register_en"]
    assert {major["major_code"] for major in majors if major["kind"] == "event"} >= {"01", "04"}


def test_the_history_keeps_who_changed_what_and_when(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ADMIN)
    tiles(client, district_code=DISTRICT_CODE, department="transport")
    tiles(client, district_code=DISTRICT_CODE, department="landscaping")
    client.delete(f"/api/v1/cases/catalogue/C0201/overrides/{DISTRICT_CODE}")

    history = client.get("/api/v1/cases/catalogue/C0201/history").json()["items"]

    assert [(item["change"], item["department"]) for item in history] == [
        ("remove", None),
        ("set", "landscaping"),
        ("set", "transport"),
    ]
    assert {item["changed_by"] for item in history} == {"admin"}
    assert all(item["changed_at"] for item in history)


@pytest.mark.parametrize("actor", [DISPATCHER, HOUSING, ZHANG])
def test_only_administrators_change_the_catalogue(
    city: Session, client: TestClient, act_as: ActAs, actor: Actor
) -> None:
    act_as(ADMIN)
    tiles(client, district_code=DISTRICT_CODE, department="transport")
    act_as(actor)

    put = tiles(client, district_code=DISTRICT_CODE, department="landscaping")
    delete = client.delete(f"/api/v1/cases/catalogue/C0201/overrides/{DISTRICT_CODE}")
    history = client.get("/api/v1/cases/catalogue/C0201/history")
    read = client.get("/api/v1/cases/catalogue/C0201", params={"district_code": DISTRICT_CODE})

    assert (put.status_code, delete.status_code, history.status_code) == (403, 403, 403)
    assert read.status_code == 200 and read.json()["department"] == "transport"
    assert count(city, CategoryOverrideChange) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"deadlines": {"urgent": "soon"}}, "deadlines.urgent"),
        ({"deadlines": {"high": "0h"}}, "deadlines.high"),
        ({"deadlines": {"normal": "9999d"}}, "deadlines.normal"),
        ({"deadlines": {"urgent": "6d"}}, "deadlines"),  # longer than high (2d)
        ({"deadlines": {"someday": "1d"}}, "deadlines.someday"),
        ({"department": "ministry-of-magic"}, "department"),
        ({"register_zh": ""}, "register_zh"),
        ({"close_en": "x" * 1001}, "close_en"),
        ({}, "department"),  # nothing to change
        ({"district_code": "440199", "department": "transport"}, "district_code"),
        ({"district_code": "440104001", "department": "transport"}, "district_code"),
        ({"colour": "red", "department": "transport"}, "colour"),
    ],
)
def test_bad_values_name_the_field_and_change_nothing(
    city: Session, client: TestClient, act_as: ActAs, body: dict[str, Any], field: str
) -> None:
    act_as(ADMIN)
    tiles(client, district_code=DISTRICT_CODE, department="transport")

    response = tiles(client, **{"district_code": DISTRICT_CODE, **body})

    assert response.status_code == 422, response.text
    assert field in [item["field"] for item in response.json()["error"]["details"]]
    stored = city.scalars(select(CategoryOverride)).all()
    assert [(row.department, row.deadline_urgent) for row in stored] == [("transport", None)]
    assert count(city, CategoryOverrideChange) == 1


def test_an_unknown_category_is_not_found_or_refused(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ADMIN)

    read = client.get("/api/v1/cases/catalogue/C9999")
    put = client.put(
        "/api/v1/cases/catalogue/C9999",
        json={"district_code": DISTRICT_CODE, "department": "transport"},
    )

    assert read.status_code == 404
    assert put.status_code == 422
    assert put.json()["error"]["details"][0]["field"] == "category"
