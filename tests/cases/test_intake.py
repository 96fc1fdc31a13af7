"""POST /api/v1/cases: a report becomes a case in its grid, routed to its department; bad
input is refused naming the field, and a second submit makes no second case."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.cases.models import Case, CaseEventRecord
from citygrid.kit.actor import Actor
from tests.cases.conftest import DISPATCHER, FAR_GRID, HOUSING, TILE_GRID, ZHANG
from tests.cases.helpers import count_cases, count_transitions, tile_report

ActAs = Callable[[Actor], None]


def test_a_grid_worker_files_the_tile_and_the_case_lands_in_her_grid(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ZHANG)

    response = client.post("/api/v1/cases", json=tile_report())

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"/api/v1/cases/{body['id']}"
    assert body["state"] == "reported"
    assert body["category"] == "C0201"
    assert body["kind"] == "component"
    assert body["priority"] == "high"
    assert body["source"] == "grid_worker"
    assert body["grid_code"] == TILE_GRID
    assert body["department"] == "housing-construction"
    assert body["address"] == "12 Jiefang Road"
    assert body["deadline_at"] is None  # the clock starts at dispatch
    assert body["reported_at"].endswith(("+00:00", "Z"))
    assert len(body["id"]) >= 16 and not body["id"].isdigit()
    row = city.scalars(select(Case).where(Case.ref == body["id"])).one()
    event = city.scalars(select(CaseEventRecord).where(CaseEventRecord.case_id == row.id)).one()
    assert event.name == "case.created"
    assert event.grid_code == TILE_GRID
    assert event.payload["ref"] == body["id"]
    assert event.payload["category"] == "C0201"


def test_the_reporter_s_contact_is_stored_but_not_shown(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)
    report = tile_report(reporter_contact={"name": "王小明", "phone": "13800138000"})

    response = client.post("/api/v1/cases", json=report)

    assert response.status_code == 201
    assert response.json()["source"] == "hotline"
    for secret in ("王小明", "13800138000", "reporter_contact"):
        assert secret not in response.text
        assert secret not in client.get(f"/api/v1/cases/{response.json()['id']}").text
    row = city.scalars(select(Case).where(Case.ref == response.json()["id"])).one()
    assert (row.reporter_contact_name, row.reporter_contact_phone) == ("王小明", "13800138000")
    event = city.scalars(select(CaseEventRecord).where(CaseEventRecord.case_id == row.id)).one()
    assert "13800138000" not in str(event.payload)


def test_a_double_submit_with_the_same_key_makes_one_case(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ZHANG)
    headers = {"Idempotency-Key": "7f6c2a1e-0d7b-4b8e-9a51-3c3f0e1d2b44"}

    first = client.post("/api/v1/cases", json=tile_report(), headers=headers)
    second = client.post("/api/v1/cases", json=tile_report(), headers=headers)

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Location"] == first.headers["Location"]
    assert count_cases(city) == 1


def test_the_same_key_from_another_reporter_is_another_case(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    headers = {"Idempotency-Key": "form-1"}
    act_as(ZHANG)
    first = client.post("/api/v1/cases", json=tile_report(), headers=headers)
    act_as(DISPATCHER)
    second = client.post("/api/v1/cases", json=tile_report(), headers=headers)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert count_cases(city) == 2


def test_without_a_key_each_submit_is_a_case(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ZHANG)

    client.post("/api/v1/cases", json=tile_report())
    client.post("/api/v1/cases", json=tile_report())

    assert count_cases(city) == 2


def without(field: str) -> dict[str, Any]:
    body = tile_report()
    body.pop(field)
    return body


@pytest.mark.parametrize(
    ("body", "headers", "fields"),
    [
        (tile_report(category="C9999"), {}, ["category"]),
        (tile_report(category="tiles"), {}, ["category"]),
        (tile_report(lat=39.9, lon=116.4), {}, ["lat", "lon"]),  # Beijing
        (tile_report(lat=91), {}, ["lat"]),
        (tile_report(lon="east"), {}, ["lon"]),
        (tile_report(description="x" * 2001), {}, ["description"]),
        (tile_report(description="   "), {}, ["description"]),
        (tile_report(priority="asap"), {}, ["priority"]),
        (tile_report(address="x" * 201), {}, ["address"]),
        (tile_report(reporter_contact={"phone": "call me"}), {}, ["reporter_contact.phone"]),
        (tile_report(colour="red"), {}, ["colour"]),
        (without("category"), {}, ["category"]),
        (without("description"), {}, ["description"]),
        (without("lat"), {}, ["lat"]),
        (without("lon"), {}, ["lon"]),
        (tile_report(), {"Idempotency-Key": "x" * 65}, ["Idempotency-Key"]),
        (tile_report(), {"Idempotency-Key": "a key with spaces"}, ["Idempotency-Key"]),
    ],
)
def test_bad_input_names_the_field_and_creates_nothing(
    city: Session,
    client: TestClient,
    act_as: ActAs,
    body: dict[str, Any],
    headers: dict[str, str],
    fields: list[str],
) -> None:
    act_as(DISPATCHER)

    response = client.post("/api/v1/cases", json=body, headers=headers)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert [detail["field"] for detail in error["details"]] == fields
    assert all(detail["reason"] for detail in error["details"])
    assert count_cases(city) == 0
    assert count_transitions(city) == 0


def test_a_location_outside_the_city_says_so(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    response = client.post(
        "/api/v1/cases",
        json=tile_report(lat=23.0, lon=113.0),
        headers={"Accept-Language": "en"},
    )

    assert response.status_code == 422
    assert "outside the city" in response.json()["error"]["message"]


def test_a_grid_worker_reports_only_inside_her_territory(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ZHANG)

    response = client.post("/api/v1/cases", json=tile_report(FAR_GRID))

    assert response.status_code == 422
    assert [d["field"] for d in response.json()["error"]["details"]] == ["lat", "lon"]
    assert count_cases(city) == 0


def test_the_hotline_files_anywhere_in_the_city(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    response = client.post("/api/v1/cases", json=tile_report(FAR_GRID))

    assert response.status_code == 201
    assert response.json()["grid_code"] == FAR_GRID


@pytest.mark.parametrize(
    "actor",
    [HOUSING, Actor(name="auditor", role="auditor", scopes=("440100",))],
)
def test_roles_that_do_not_take_reports_are_refused(
    city: Session, client: TestClient, act_as: ActAs, actor: Actor
) -> None:
    act_as(actor)

    response = client.post("/api/v1/cases", json=tile_report())

    assert response.status_code == 403
    assert count_cases(city) == 0


def test_without_signing_in_nothing_is_filed(city: Session, client: TestClient) -> None:
    response = client.post("/api/v1/cases", json=tile_report())

    assert response.status_code == 401
    assert count_cases(city) == 0
