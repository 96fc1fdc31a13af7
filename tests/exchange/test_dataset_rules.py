"""Dataset batches follow the same rules as life events: a batch never undoes a newer marriage
event, and nothing runs on for a person who has died."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.access.policy import LegalBasis, default_policy
from citygrid.exchange.models import MaritalRecord
from citygrid.kit.actor import Actor
from tests.exchange.story import (
    CIVIL_AFFAIRS,
    FAMILY_PLANNING,
    PUBLIC_SECURITY,
    RENTAL_HOUSING,
    SOCIAL_SECURITY,
    allowance,
    event,
    flat,
    pension,
    resident,
    snapshot,
    tenancies,
)

EVENTS = "/api/v1/exchange/events"


def _records(dataset: str) -> str:
    return f"/api/v1/exchange/datasets/{dataset}/records"


def _marital(session: Session, person_id: int) -> MaritalRecord | None:
    statement = select(MaritalRecord).where(MaritalRecord.person_id == person_id)
    return session.scalars(statement).first()


def test_a_batch_row_older_than_a_marriage_event_does_not_undo_it(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    bride = resident(city)
    act_as(FAMILY_PLANNING)
    married = event(
        "marriage_status_changed",
        bride,
        occurred_at="2026-03-01T10:00:00+08:00",
        marital_status="married",
    )
    assert client.post(EVENTS, json=married).json()["applied"] is True

    # Last month's dump, made before the wedding, and a row without a date.
    stale = {"id_number": bride.id_number, "marital_status": "unmarried", "since": "2020-02-01"}
    undated = {"id_number": bride.id_number, "marital_status": "unmarried"}
    for row in (stale, undated):
        response = client.post(
            _records("marital_statuses"), json={"mode": "valid_rows", "records": [row]}
        )
        assert response.status_code == 200, response.text
        [problem] = response.json()["rejected"]
        assert (problem["index"], problem["field"]) == (0, "since")
        assert "2026-03-01" in problem["reason"]

    city.expire_all()
    assert _marital(city, bride.id).marital_status.value == "married"
    city.refresh(bride)
    assert bride.marital_status.value == "married"


def test_a_newer_batch_row_applies_and_then_supersedes_an_older_late_event(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    act_as(FAMILY_PLANNING)
    client.post(
        EVENTS,
        json=event(
            "marriage_status_changed",
            person,
            occurred_at="2026-01-10T10:00:00+08:00",
            marital_status="married",
        ),
    )
    row = {"id_number": person.id_number, "marital_status": "divorced", "since": "2026-03-02"}
    response = client.post(_records("marital_statuses"), json={"records": [row]})
    assert response.status_code == 200, response.text
    assert response.json()["updated"] == 1

    # A widowing dated before the divorce arrives late: the batch's newer fact stands.
    late = event(
        "marriage_status_changed",
        person,
        occurred_at="2026-02-20T10:00:00+08:00",
        marital_status="widowed",
    )
    answer = client.post(EVENTS, json=late).json()

    assert (answer["applied"], answer["reason"]) == (False, "superseded")
    city.expire_all()
    assert _marital(city, person.id).marital_status.value == "divorced"


def test_nothing_is_set_running_for_a_deceased_person(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    home = flat(city)
    act_as(PUBLIC_SECURITY)
    assert client.post(EVENTS, json=event("death", person)).json()["applied"] is True
    before = snapshot(city)
    cases = [
        (CIVIL_AFFAIRS, "subsistence_allowances", {"amount": "900.00", "status": "active"}),
        (SOCIAL_SECURITY, "pensions", {"amount": "2100.00", "status": "active"}),
        (RENTAL_HOUSING, "tenancies", {"unit_id": home.id}),
        (FAMILY_PLANNING, "marital_statuses", {"marital_status": "widowed"}),
    ]
    for actor, dataset, fields in cases:
        act_as(actor)
        row = {"id_number": person.id_number, "since": "2026-04-01", **fields}
        response = client.post(_records(dataset), json={"records": [row]})

        assert response.status_code == 422, dataset
        [detail] = response.json()["error"]["details"]
        assert "deceased" in detail["reason"], dataset
        assert person.id_number not in response.text
    assert snapshot(city) == before


def test_the_end_of_a_deceased_person_s_benefits_may_still_be_recorded(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    home = flat(city)
    act_as(PUBLIC_SECURITY)
    client.post(EVENTS, json=event("death", person))
    rows = [
        (CIVIL_AFFAIRS, "subsistence_allowances", {"amount": "900.00", "status": "stopped"}),
        (SOCIAL_SECURITY, "pensions", {"amount": "2100.00", "status": "stopped"}),
        (
            RENTAL_HOUSING,
            "tenancies",
            {"unit_id": home.id, "until": "2026-03-14", "status": "ended"},
        ),
        (PUBLIC_SECURITY, "criminal_records", {"criminal_record": False}),
    ]
    for actor, dataset, fields in rows:
        act_as(actor)
        row = {"id_number": person.id_number, "since": "2021-01-01", **fields}
        response = client.post(_records(dataset), json={"records": [row]})
        assert response.status_code == 200, (dataset, response.text)
        assert response.json()["created"] == 1

    city.expire_all()
    assert allowance(city, person).status.value == "stopped"
    assert pension(city, person).status.value == "stopped"
    assert [t.status.value for t in tenancies(city, person)] == ["ended"]


def test_life_event_notification_is_a_statutory_purpose_of_those_told() -> None:
    policy = default_policy()
    purpose = policy.purposes["life-event-notification"]

    assert purpose.legal_basis is LegalBasis.STATUTORY
    assert "life-event-notification" in policy.grant("grid_worker", None).purposes
    # Those the reactions tell, and public security and departments without a grant of
    # their own, whose systems may subscribe to webhooks.
    for department in ("civil-affairs", "social-security", "rental-housing", "public-security"):
        grant = policy.grant("department_officer", department)
        assert "life-event-notification" in grant.purposes, department
    assert "life-event-notification" in policy.grant("department_officer", "water-affairs").purposes
    # Family planning reads only with consent: a statutory purpose would let it read without.
    assert (
        "life-event-notification"
        not in policy.grant("department_officer", "family-planning").purposes
    )
