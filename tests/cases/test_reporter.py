"""The reporter's contact (hotline, public page) is personal data: never in a case's API
reads, shown masked only through the access gateway for a purpose, revealed only where
the policy allows, and every look is in the access log."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from tests.access.gateway_factories import entries
from tests.cases.conftest import DISPATCHER, HOUSING, NEIGHBOUR, ZHANG
from tests.cases.helpers import tile_report

ActAs = Callable[[Actor], None]
CALLER = {"name": "王小明", "phone": "13800138000"}


def _hotline_case(client: TestClient, act_as: ActAs) -> str:
    act_as(DISPATCHER)
    response = client.post("/api/v1/cases", json=tile_report(reporter_contact=CALLER))
    assert response.status_code == 201
    ref: str = response.json()["id"]
    return ref


def test_the_dispatcher_sees_the_caller_masked_and_the_look_is_logged(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    ref = _hotline_case(client, act_as)

    response = client.get(f"/api/v1/cases/{ref}/reporter", params={"purpose": "case-handling"})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "王**"
    assert body["phone"] == "138****8000"
    assert body["masked"] == ["name", "phone"]
    assert body["revealable"] == ["name", "phone"]
    (entry,) = entries(city, action="read_case_reporter")
    assert entry.subjects == [f"case:{ref}"]
    assert entry.purpose == "case-handling"
    assert entry.fields == ["case_reporter"]
    for read in (client.get(f"/api/v1/cases/{ref}"), client.get("/api/v1/cases")):
        assert "13800138000" not in read.text and "王小明" not in read.text


def test_the_dispatcher_may_reveal_the_phone_to_call_back(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    ref = _hotline_case(client, act_as)

    response = client.post(
        f"/api/v1/cases/{ref}/reporter/reveal",
        json={"purpose": "case-handling", "fields": ["phone"]},
    )

    assert response.status_code == 200, response.text
    assert response.json()["phone"] == "13800138000"
    assert response.json()["name"] is None
    (entry,) = entries(city, action="reveal_case_reporter")
    assert entry.fields == ["reporter_phone"]


def test_a_grid_worker_sees_it_masked_but_may_not_reveal_it(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    ref = _hotline_case(client, act_as)
    act_as(ZHANG)

    masked = client.get(f"/api/v1/cases/{ref}/reporter", params={"purpose": "case-handling"})
    refused = client.post(
        f"/api/v1/cases/{ref}/reporter/reveal",
        json={"purpose": "case-handling", "fields": ["phone"]},
    )

    assert masked.json()["phone"] == "138****8000"
    assert masked.json()["revealable"] == []
    assert refused.status_code == 403
    assert "13800138000" not in refused.text
    (denied,) = entries(city, action="reveal_case_reporter")
    assert denied.outcome == "denied"


def test_without_a_purpose_or_outside_the_scope_nothing_is_shown(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    ref = _hotline_case(client, act_as)

    no_purpose = client.get(f"/api/v1/cases/{ref}/reporter")
    act_as(NEIGHBOUR)
    outside = client.get(f"/api/v1/cases/{ref}/reporter", params={"purpose": "case-handling"})
    act_as(HOUSING)
    department = client.get(f"/api/v1/cases/{ref}/reporter", params={"purpose": "statistics"})

    assert no_purpose.status_code == 400
    assert no_purpose.json()["error"]["details"][0]["field"] == "purpose"
    assert outside.status_code == 404
    assert department.status_code == 403
    for answer in (no_purpose, outside, department):
        assert "8000" not in answer.text
    outcomes = [entry.outcome for entry in entries(city, action="read_case_reporter")]
    assert outcomes == ["denied", "denied", "denied"]
