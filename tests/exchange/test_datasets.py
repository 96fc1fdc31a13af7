"""Departments publish the datasets they own in batches of up to 10,000 rows, each row checked
on its own: all or nothing, or the valid rows, with every rejected row listed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.exchange.models import OutboxEntry, Publication
from citygrid.kit.actor import Actor
from citygrid.registry.idnumber import make_id_number
from tests.exchange.story import (
    CIVIL_AFFAIRS,
    FAMILY_PLANNING,
    PUBLIC_SECURITY,
    RENTAL_HOUSING,
    allowance,
    flat,
    money,
    resident,
    snapshot,
    tenancies,
)

ALLOWANCES = "/api/v1/exchange/datasets/subsistence_allowances/records"
STRANGER = make_id_number("440104", date(1950, 5, 5), 555)


def _row(person_number: str, **overrides: object) -> dict[str, object]:
    return {
        "id_number": person_number,
        "amount": "1080.00",
        "status": "active",
        "since": "2024-01-01",
    } | overrides


def _mixed_batch(city: Session) -> tuple[list, list]:
    people = [resident(city) for _ in range(3)]
    records = [
        _row(people[0].id_number),
        _row(STRANGER),  # 1: nobody by that number
        _row(people[1].id_number, amount="-5"),  # 2: negative money
        _row(people[1].id_number[:17] + ("0" if people[1].id_number[17] != "0" else "1")),  # 3
        _row(people[2].id_number, status="paused", since="2024-02-30"),  # 4: two bad fields
        "not an object",  # 5
        _row(people[0].id_number, amount="990.00"),  # 6: the same person again
    ]
    return people, records


def test_all_or_nothing_lists_every_rejected_row_and_writes_nothing(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    people, records = _mixed_batch(city)
    before = snapshot(city)
    act_as(CIVIL_AFFAIRS)

    response = client.post(ALLOWANCES, json={"mode": "all_or_nothing", "records": records})

    assert response.status_code == 422
    details = response.json()["error"]["details"]
    assert [(d["index"], d["field"]) for d in details] == [
        (1, "id_number"),
        (2, "amount"),
        (3, "id_number"),
        (4, "status"),
        (4, "since"),
        (5, "record"),
        (6, "id_number"),
    ]
    assert "6 of 7 records were rejected" in response.json()["error"]["message"]
    for secret in [STRANGER] + [person.id_number for person in people]:
        assert secret not in response.text
    assert snapshot(city) == before
    assert allowance(city, people[0]) is None


def test_valid_rows_are_written_and_the_rejected_listed(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    people, records = _mixed_batch(city)
    act_as(CIVIL_AFFAIRS)

    response = client.post(ALLOWANCES, json={"mode": "valid_rows", "records": records})

    assert response.status_code == 200
    report = response.json()
    assert (report["received"], report["created"], report["updated"], report["unchanged"]) == (
        7,
        1,
        0,
        0,
    )
    assert sorted({problem["index"] for problem in report["rejected"]}) == [1, 2, 3, 4, 5, 6]
    held = allowance(city, people[0])
    assert held is not None and held.amount == money("1080.00")
    assert allowance(city, people[1]) is None
    publication = city.scalars(select(Publication)).one()
    assert (publication.received, publication.created, publication.rejected) == (7, 1, 6)


def test_a_second_batch_updates_what_changed_and_tells_only_of_that(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    steady, raised = resident(city), resident(city)
    act_as(CIVIL_AFFAIRS)
    client.post(ALLOWANCES, json={"records": [_row(steady.id_number), _row(raised.id_number)]})
    city.flush()
    news_before = city.execute(select(func.count()).select_from(OutboxEntry)).scalar_one()

    report = client.post(
        ALLOWANCES,
        json={"records": [_row(steady.id_number), _row(raised.id_number, amount="1200.00")]},
    ).json()

    assert (report["created"], report["updated"], report["unchanged"]) == (0, 1, 1)
    city.expire_all()
    assert allowance(city, raised).amount == money("1200.00")
    news_after = city.execute(select(func.count()).select_from(OutboxEntry)).scalar_one()
    assert news_after == news_before + 1
    [latest] = city.scalars(select(OutboxEntry).order_by(OutboxEntry.id.desc()).limit(1))
    assert latest.topic == "dataset.subsistence_allowances"
    assert latest.payload == {"dataset": "subsistence_allowances", "person_ref": raised.ref}


def test_only_the_owner_publishes_a_dataset(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    before = snapshot(city)
    act_as(PUBLIC_SECURITY)

    response = client.post(ALLOWANCES, json={"records": [_row(person.id_number)]})

    assert response.status_code == 403
    assert snapshot(city) == before


def test_an_unknown_dataset_is_not_found(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    act_as(CIVIL_AFFAIRS)

    response = client.post(
        "/api/v1/exchange/datasets/horoscopes/records", json={"records": [{"id_number": "x"}]}
    )

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"records": []}, "records"),
        ({"records": [{}] * 10_001}, "records"),
        ({"mode": "some", "records": [{}]}, "mode"),
    ],
)
def test_a_batch_has_one_to_ten_thousand_rows_and_a_known_mode(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    body: dict,
    field: str,
) -> None:
    act_as(CIVIL_AFFAIRS)

    response = client.post(ALLOWANCES, json=body)

    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"].startswith(field)


def test_a_marital_status_batch_reaches_the_registry(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city, marital_status="married")
    act_as(FAMILY_PLANNING)

    report = client.post(
        "/api/v1/exchange/datasets/marital_statuses/records",
        json={"records": [{"id_number": person.id_number, "marital_status": "widowed"}]},
    ).json()

    assert report["created"] == 1
    city.refresh(person)
    assert person.marital_status.value == "widowed"
    from citygrid.registry import service as registry

    [change] = [
        c
        for c in registry.history(city, entity="person", entity_id=person.id)
        if c.action == "update"
    ]
    assert change.after == {"marital_status": "widowed"}
    assert change.actor == FAMILY_PLANNING.name


def test_tenancies_name_a_real_flat_and_a_period(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    tenant = resident(city)
    rented = flat(city)
    act_as(RENTAL_HOUSING)

    report = client.post(
        "/api/v1/exchange/datasets/tenancies/records",
        json={
            "mode": "valid_rows",
            "records": [
                {"id_number": tenant.id_number, "unit_id": rented.id, "since": "2025-03-01"},
                {"id_number": tenant.id_number, "unit_id": 987_654, "since": "2025-03-01"},
                {
                    "id_number": tenant.id_number,
                    "unit_id": rented.id,
                    "since": "2024-03-01",
                    "until": "2024-01-01",
                },
                {
                    "id_number": tenant.id_number,
                    "unit_id": rented.id,
                    "since": "2023-03-01",
                    "status": "ended",
                },
            ],
        },
    ).json()

    assert [(p["index"], p["field"]) for p in report["rejected"]] == [
        (1, "unit_id"),
        (2, "until"),
        (3, "until"),
    ]
    [tenancy] = tenancies(city, tenant)
    assert (tenancy.unit_id, tenancy.status.value) == (rented.id, "active")


def test_the_criminal_record_flag_is_public_security_s(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    person = resident(city)
    url = "/api/v1/exchange/datasets/criminal_records/records"
    act_as(CIVIL_AFFAIRS)
    assert (
        client.post(
            url, json={"records": [{"id_number": person.id_number, "criminal_record": True}]}
        ).status_code
        == 403
    )
    act_as(PUBLIC_SECURITY)

    report = client.post(
        url, json={"records": [{"id_number": person.id_number, "criminal_record": True}]}
    ).json()

    assert report["created"] == 1
