"""What a webhook discloses goes through the access gateway: rows whose own place lies outside
the subscriber's territory stay out, a field the department is not granted is never in a
body, and the telling is in the access log as soon as the fan-out commits (not when the POST
succeeds), or not at all when the fan-out rolls back."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.audit.models import AuditEntry
from citygrid.exchange import outbox
from citygrid.exchange import service as exchange
from citygrid.exchange.webhooks import repository as webhooks_repository
from citygrid.exchange.webhooks.models import WebhookAttempt, WebhookDelivery
from citygrid.kit.actor import SYSTEM, Actor
from citygrid.kit.models import utcnow
from citygrid.registry import service as registry
from citygrid.registry.models import HousingUnit, Person
from citygrid.territory.service import import_feature_collection
from tests.exchange.story import (
    CLERK,
    OTHER_GRID,
    PUBLIC_SECURITY,
    RENTAL_HOUSING,
    event,
    family,
    flat,
)
from tests.exchange.webhooks.conftest import (
    API,
    CA_SYSTEM,
    HRSS_SYSTEM,
    PS_SYSTEM,
    RH_SYSTEM,
    WATER_SYSTEM,
    department,
    post_subscription,
    subscribe,
    webhook_told,
)
from tests.exchange.webhooks.receiver import Receiver
from tests.registry.factories import building_data

#: A district next to the mini city's 440104, with one grid (north of it, inside the city).
NEIGHBOUR_DISTRICT = "440103"
NEIGHBOUR_GRID = "440103001001001"


def _box(west: float, south: float, east: float, north: float) -> dict[str, Any]:
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _neighbour_district(session: Session) -> None:
    box = _box(113.265, 23.127, 113.271, 23.128)
    features = [
        ("440103", "district", {"parent_code": "440100"}),
        ("440103001", "street", {}),
        ("440103001001", "community", {}),
        (NEIGHBOUR_GRID, "grid", {}),
    ]
    import_feature_collection(
        session,
        SYSTEM,
        collection={
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {
                        "code": code,
                        "level": level,
                        "name_zh": f"邻区{code}",
                        "name_en": f"Neighbour {code}",
                        **extra,
                    },
                    "geometry": box,
                }
                for code, level, extra in features
            ],
        },
    )
    session.flush()


def _flat_in_neighbour_district(session: Session) -> HousingUnit:
    building = registry.create_building(
        session,
        CLERK,
        data=building_data(NEIGHBOUR_GRID, lon=113.268, lat=23.1275, address="邻区某路 1 号"),
    )
    return registry.create_housing_unit(
        session,
        CLERK,
        data={"building_id": building.id, "floor": 2, "number": "201", "use": "rental"},
    )


def _rents(session: Session, person: Person, units: list[HousingUnit]) -> None:
    exchange.publish_records(
        session,
        RENTAL_HOUSING,
        dataset="tenancies",
        data={
            "records": [
                {"id_number": person.id_number, "unit_id": unit.id, "since": f"202{i}-09-01"}
                for i, unit in enumerate(units)
            ]
        },
    )


def test_a_tenancy_outside_the_subscribers_territory_is_never_delivered(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
) -> None:
    _neighbour_district(city)
    district = subscribe(client, act_as, RH_SYSTEM, receiver.url, "tenancies")
    street_system = department("rh-street-1", "rental-housing", scopes=("440104001",))
    street = subscribe(client, act_as, street_system, receiver.url, "tenancies")
    neighbour_system = department("rh-yuexiu-north", "rental-housing", (NEIGHBOUR_DISTRICT,))
    neighbour = subscribe(client, act_as, neighbour_system, receiver.url, "tenancies")
    home = family(city)  # lives in street 440104001
    here, other_street = flat(city, number="402"), flat(city, OTHER_GRID)
    far = _flat_in_neighbour_district(city)
    _rents(city, home.head, [here, other_street, far])

    send()

    units: dict[str, set[int]] = {district: set(), street: set(), neighbour: set()}
    for body in receiver.bodies():
        assert body["subject"]["ref"] == home.head.ref
        units[body["subscription"]].update(row["unit_id"] for row in body["data"]["records"])
    # Rental housing sees tenancies in clear: the rows, not their masks, are what is left out.
    assert units[district] == {here.id, other_street.id}  # the district's, not the neighbour's
    assert units[street] == {here.id}
    assert units[neighbour] == set()  # the tenant lives outside its district: not told
    assert "2022-09-01" not in json.dumps(receiver.bodies())  # not even the far row's dates
    # Each telling is logged with the number of rows told, no more.
    for entry in webhook_told(city):
        told = units[entry.detail["subscription"]]
        assert entry.detail["records"] == len(told)
        assert entry.fields == ["identity", "tenancy"]


def test_a_criminal_record_never_reaches_a_department_not_granted_it(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
) -> None:
    others = {}
    for actor in (CA_SYSTEM, RH_SYSTEM, HRSS_SYSTEM, WATER_SYSTEM):
        others[subscribe(client, act_as, actor, receiver.url, "*")] = actor.department
    police = subscribe(client, act_as, PS_SYSTEM, receiver.url, "criminal_records")
    act_as(CA_SYSTEM)
    refused = post_subscription(client, receiver.url, "criminal_records")
    home = family(city)
    exchange.publish_records(
        city,
        PUBLIC_SECURITY,
        dataset="criminal_records",
        data={
            "records": [
                {"id_number": home.head.id_number, "criminal_record": True, "since": "2020-05-01"}
            ]
        },
    )
    exchange.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))

    send()

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "topic_not_granted")
    bodies = receiver.bodies()
    [flagged] = [body for body in bodies if body["subscription"] == police]
    assert flagged["data"]["records"] == [{"criminal_record": True, "since": "2020-05-01"}]
    theirs = [body for body in bodies if body["subscription"] in others]
    # Every other department heard of the death, and of nothing else.
    assert sorted(body["subscription"] for body in theirs) == sorted(others)
    assert {body["topic"] for body in theirs} == {"death"}
    for body in theirs:
        assert "criminal" not in json.dumps(body)
    for entry in webhook_told(city):
        if entry.department != "public-security":
            assert "criminal_record" not in entry.fields


def test_the_telling_is_logged_when_the_fan_out_commits_before_any_attempt(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    deliver: Callable[[], outbox.DeliveryReport],
    send: Callable[..., object],
) -> None:
    sub = subscribe(client, act_as, CA_SYSTEM, receiver.url, "death")
    home = family(city)
    exchange.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))
    receiver.status = 503

    deliver()  # the fan-out only: nothing is sent yet

    [delivery] = city.scalars(select(WebhookDelivery)).all()
    assert (delivery.state, delivery.attempts) == ("pending", 0)
    assert city.scalars(select(WebhookAttempt)).all() == []
    [entry] = webhook_told(city)
    assert (entry.actor, entry.department, entry.subjects) == (
        CA_SYSTEM.name,
        "civil-affairs",
        [home.head.ref],
    )
    assert (entry.detail["subscription"], entry.detail["delivery"]) == (sub, delivery.uid)
    assert entry.fields == delivery.field_classes == ["identity", "household_registration"]

    # A refused attempt, then an accepted one: the delivery log has both, the access log
    # still its one entry.
    send()
    receiver.status = 200
    send(now=utcnow() + timedelta(hours=1))
    assert [body["id"] for body in receiver.bodies()] == [delivery.uid]
    attempts = city.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)).all()
    assert [attempt.status_code for attempt in attempts] == [503, 200]
    assert [told.id for told in webhook_told(city)] == [entry.id]


def test_a_fan_out_that_rolls_back_leaves_no_entry(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    sessions: outbox.SessionFactory,
    deliver: Callable[[], outbox.DeliveryReport],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    subscribe(client, act_as, CA_SYSTEM, receiver.url, "death")
    home = family(city)
    exchange.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))

    def crash(_session: Session, _rows: object) -> None:
        raise RuntimeError("the database went away")

    with monkeypatch.context() as patched:
        patched.setattr(webhooks_repository, "insert_deliveries", crash)
        report = deliver()

    assert report.failed == 1
    assert city.scalars(select(WebhookDelivery)).all() == []
    assert webhook_told(city) == []
    # The reactions' own entries committed: only the webhooks' savepoint rolled back.
    assert _told_by_reactions(city) != []

    outbox.drain(sessions, worker_id="test-worker", now=utcnow() + timedelta(hours=1))
    city.expire_all()
    [delivery] = city.scalars(select(WebhookDelivery)).all()
    [entry] = webhook_told(city)
    assert entry.detail["delivery"] == delivery.uid
    assert receiver.received == []


def _told_by_reactions(session: Session) -> list[AuditEntry]:
    statement = select(AuditEntry).where(AuditEntry.action == "told")
    return [entry for entry in session.scalars(statement) if entry.actor.startswith("exchange:")]


def test_a_department_that_may_not_be_told_cannotsubscribe(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    # Family planning reads only with a resident's consent: it holds no statutory purpose
    # to be told for.
    act_as(department("fp-marriage-system", "family-planning"))

    answer = post_subscription(client, receiver.url, "marriage_status_changed")

    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "purpose_not_allowed"
    assert receiver.challenges == []
    assert city.scalars(select(WebhookDelivery)).all() == []
    assert client.get(API).json() == []
