"""A department reads the data another holds, through the access rules: a purpose, its
grant, the person's grid in its scope, consent where the purpose needs it, masks, and an
entry in the access log for every answer, refusals included."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.access import consent
from citygrid.audit.models import AuditEntry
from citygrid.kit.actor import Actor
from citygrid.kit.clock import local_today
from tests.exchange.story import (
    CLERK,
    GRID,
    give_allowance,
    give_pension,
    resident,
)
from tests.fixtures_territory import DISTRICT_CODE, STREET_CODES

ALLOWANCES = "/api/v1/exchange/datasets/subsistence_allowances/records"


def _officer(department: str, scope: str = DISTRICT_CODE) -> Actor:
    return Actor(
        name=f"officer.{department}",
        role="department_officer",
        department=department,
        scopes=(scope,),
        kind="account",
    )


CIVIL_AFFAIRS_OFFICER = _officer("civil-affairs")


def _log(session: Session) -> list[AuditEntry]:
    session.flush()
    statement = select(AuditEntry).where(AuditEntry.action == "read_dataset")
    return list(session.scalars(statement.order_by(AuditEntry.id)))


def test_civil_affairs_reads_an_allowance_in_clear_for_statistics(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    give_allowance(city, person, amount="1080.00")
    act_as(CIVIL_AFFAIRS_OFFICER)

    response = client.post(
        f"{ALLOWANCES}/search", json={"purpose": "statistics", "id_number": person.id_number}
    )

    assert response.status_code == 200
    body = response.json()
    assert body["subject"] == person.ref
    assert body["records"] == [{"amount": "1080.00", "status": "active", "since": "2019-07-01"}]
    assert body["masked"] == []
    assert person.id_number not in response.text
    [entry] = _log(city)
    assert (entry.outcome, entry.purpose, entry.subjects, entry.fields) == (
        "allowed",
        "statistics",
        [person.ref],
        ["allowance"],
    )
    assert entry.department == "civil-affairs"


def test_a_consent_purpose_needs_the_resident_s_consent(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    give_allowance(city, person)
    act_as(CIVIL_AFFAIRS_OFFICER)
    url = f"{ALLOWANCES}?person={person.ref}&purpose=allowance-review"

    refused = client.get(url)
    consent.grant_consent(
        city,
        CLERK,
        person_ref=person.ref,
        requester_department="civil-affairs",
        purpose="allowance-review",
        field_classes=["allowance"],
        valid_from=local_today() - timedelta(days=1),
        valid_until=None,
        obtained_via="paper",
    )
    allowed = client.get(url)

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "consent_required"
    assert allowed.status_code == 200 and allowed.json()["records"][0]["amount"] == "1080.00"
    assert [entry.outcome for entry in _log(city)] == ["denied", "allowed"]


def test_a_community_official_sees_the_allowance_masked(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    give_allowance(city, person)
    act_as(Actor(name="official.0007", role="community_official", scopes=(GRID[:12],)))

    body = client.get(f"{ALLOWANCES}?person={person.ref}&purpose=patrol-update").json()

    assert body["records"] == [{"amount": "***", "status": "***", "since": "***"}]
    assert body["masked"] == ["amount", "status", "since"]


def test_a_department_not_granted_the_dataset_is_refused(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    give_pension(city, person)
    act_as(CIVIL_AFFAIRS_OFFICER)

    response = client.get(
        f"/api/v1/exchange/datasets/pensions/records?person={person.ref}&purpose=statistics"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "dataset_not_granted"
    [entry] = _log(city)
    assert (entry.outcome, entry.detail["reason"]) == ("denied", "dataset_not_granted")


def test_a_person_outside_the_scope_is_not_found(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)  # in the first street
    give_allowance(city, person)
    act_as(_officer("civil-affairs", scope=STREET_CODES[1]))

    response = client.post(
        f"{ALLOWANCES}/search", json={"purpose": "statistics", "id_number": person.id_number}
    )

    assert response.status_code == 404
    assert person.id_number not in response.text
    [entry] = _log(city)
    assert (entry.outcome, entry.detail["reason"], entry.subjects) == (
        "denied",
        "out_of_scope",
        [person.ref],
    )


def test_a_purpose_is_required_and_must_be_the_caller_s(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    act_as(CIVIL_AFFAIRS_OFFICER)

    missing = client.get(f"{ALLOWANCES}?person={person.ref}")
    foreign = client.get(f"{ALLOWANCES}?person={person.ref}&purpose=public-security-duty")

    assert missing.status_code == 400
    assert foreign.status_code == 403
    assert [entry.outcome for entry in _log(city)] == ["denied", "denied"]


def test_the_confidential_flag_is_public_security_s_alone(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    from citygrid.exchange import service
    from tests.exchange.story import PUBLIC_SECURITY

    person = resident(city)
    service.publish_records(
        city,
        PUBLIC_SECURITY,
        dataset="criminal_records",
        data={"records": [{"id_number": person.id_number, "criminal_record": True}]},
    )
    url = "/api/v1/exchange/datasets/criminal_records/records/search"
    act_as(_officer("public-security"))
    seen = client.post(url, json={"purpose": "public-security-duty", "id_number": person.id_number})
    act_as(CIVIL_AFFAIRS_OFFICER)
    refused = client.post(url, json={"purpose": "statistics", "id_number": person.id_number})

    assert seen.json()["records"] == [{"criminal_record": True, "since": None}]
    assert refused.status_code == 403


def test_plugged_into_the_gateway_held_data_shows_in_a_person_s_record(city: Session) -> None:
    from citygrid.access import gateway
    from citygrid.exchange.sources import SOURCES

    person = resident(city)
    give_allowance(city, person)
    official = Actor(name="official.0007", role="community_official", scopes=(GRID[:12],))
    for source in SOURCES:
        gateway.register_field_source(source)
    try:
        detail = gateway.get_person(city, official, person_ref=person.ref, purpose="patrol-update")
    finally:
        for source in SOURCES:
            gateway.unregister_field_source(source)

    assert (detail.person["allowance_status"], detail.person["allowance_amount"]) == ("***", "***")
    assert "pension_status" not in detail.person  # hidden from community officials


def test_a_read_shows_the_rows_as_the_webhook_body_does(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    """The allowance is clear to civil affairs and masked to a community official: each sees
    the same rows read through the API as a webhook of the dataset would tell it."""
    from citygrid.access import gateway
    from citygrid.exchange.catalogue import default_catalogue
    from citygrid.exchange.sources import dataset_records
    from citygrid.exchange.webhooks.payload import dataset_body

    person = resident(city)
    give_allowance(city, person, amount="1234.50")
    official = Actor(name="official.0007", role="community_official", scopes=(GRID[:12],))
    readers = [CIVIL_AFFAIRS_OFFICER, official]
    read = []
    for reader in readers:
        act_as(reader)
        response = client.post(
            f"{ALLOWANCES}/search", json={"purpose": "statistics", "id_number": person.id_number}
        )
        assert response.status_code == 200
        read.append(response.json())
    told = gateway.notification_views(
        city,
        recipients=[gateway.Recipient(actor=reader) for reader in readers],
        purpose="statistics",
        person_id=person.id,
        subject_fields=(),
        records=dataset_records("subsistence_allowances"),
    )
    spec = default_catalogue().dataset("subsistence_allowances")
    bodies = [dataset_body(one, spec=spec) for one in told if one is not None]

    assert [body["data"]["records"] for body in bodies] == [body["records"] for body in read]
    assert [body["masked"] for body in bodies] == [body["masked"] for body in read]
    assert read[0]["records"] == [{"amount": "1234.50", "status": "active", "since": "2019-07-01"}]
    assert read[1]["records"] == [{"amount": "***", "status": "***", "since": "***"}]
