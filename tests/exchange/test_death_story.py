"""Public security registers a death once; civil affairs, social security, the rental
housing office, the household register and the grid worker all hear of it."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.exchange import outbox
from citygrid.kit.actor import Actor
from tests.exchange.story import (
    CIVIL_AFFAIRS,
    DIED_AT,
    DIED_ON,
    GRID,
    PUBLIC_SECURITY,
    allowance,
    event,
    family,
    flat,
    give_allowance,
    give_pension,
    give_tenancy,
    money,
    pension,
    residences,
    tasks,
    tenancies,
    told,
)


def test_a_death_published_once_reaches_every_department_that_needs_it(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    grandpa = home.head
    rented = flat(city, number="501")
    give_allowance(city, grandpa, amount="1080.00")
    give_pension(city, grandpa, amount="3250.50")
    give_tenancy(city, grandpa, rented)
    deliver()  # the publications' own news, before the story starts

    act_as(PUBLIC_SECURITY)
    response = client.post("/api/v1/exchange/events", json=event("death", grandpa))

    assert response.status_code == 202
    answer = response.json()
    assert answer["applied"] is True and answer["reason"] is None
    assert answer["subject"] == grandpa.ref
    # The registry changed with the event, in the same transaction.
    city.refresh(grandpa)
    assert (grandpa.status.value, grandpa.died_on) == ("deceased", DIED_ON)
    assert grandpa.household_id is None and grandpa.relation_to_head is None
    assert all(residence.until == DIED_ON for residence in residences(city, grandpa))
    # The other departments hear of it through the outbox, not before.
    assert allowance(city, grandpa).status.value == "active"

    report = deliver()

    assert report.failed == 0
    held = allowance(city, grandpa)
    assert (held.status.value, held.amount) == ("suspended", money("1080.00"))
    assert pension(city, grandpa).status.value == "stopped"
    [tenancy] = tenancies(city, grandpa)
    assert (tenancy.status.value, tenancy.until) == ("ended", DIED_ON)
    by_kind = {(task.kind, task.assignee): task for task in tasks(city, grandpa)}
    assert set(by_kind) == {
        ("allowance_review", "civil-affairs"),
        ("household_head_needed", GRID),
        ("verify_death", GRID),
    }
    assert all(task.state.value == "open" for task in by_kind.values())
    assert all(task.created_by_event_id == answer["event_id"] for task in by_kind.values())
    # The access log shows who was told, and why.
    entries = told(city, grandpa)
    assert {(entry.department, tuple(entry.fields)) for entry in entries} == {
        ("civil-affairs", ("allowance",)),
        ("social-security", ("pension",)),
        ("rental-housing", ("tenancy",)),
        (None, ("household_registration",)),
        (None, ("identity",)),
    }
    assert {entry.purpose for entry in entries} == {"life-event-notification"}
    assert all(entry.detail["legal_basis"] == "statutory" for entry in entries)
    assert all(entry.detail["event_id"] == answer["event_id"] for entry in entries)


def test_civil_affairs_sees_its_review_task(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    give_allowance(city, home.spouse)
    act_as(PUBLIC_SECURITY)
    client.post("/api/v1/exchange/events", json=event("death", home.spouse))
    deliver()

    act_as(CIVIL_AFFAIRS)
    listed = client.get("/api/v1/exchange/tasks").json()

    assert [(task["kind"], task["subject"]) for task in listed] == [
        ("allowance_review", home.spouse.ref)
    ]
    assert home.spouse.id_number not in str(listed) and home.spouse.name not in str(listed)


def test_a_death_without_benefits_tells_only_the_grid_worker(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)
    client.post("/api/v1/exchange/events", json=event("death", home.spouse))

    deliver()

    assert [(task.kind, task.assignee) for task in tasks(city, home.spouse)] == [
        ("verify_death", GRID)
    ]
    assert [entry.department for entry in told(city, home.spouse)] == [None]


def test_the_publisher_can_follow_its_event_to_every_reaction(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    deliver: Callable[[], outbox.DeliveryReport],
) -> None:
    home = family(city)
    give_pension(city, home.head)
    act_as(PUBLIC_SECURITY)
    event_id = client.post("/api/v1/exchange/events", json=event("death", home.head)).json()[
        "event_id"
    ]
    before = client.get(f"/api/v1/exchange/events/{event_id}").json()

    deliver()
    after = client.get(f"/api/v1/exchange/events/{event_id}").json()

    assert [entry["state"] for entry in before["outbox"]] == ["pending"]
    [entry] = after["outbox"]
    assert entry["state"] == "delivered"
    assert entry["consumers"] == sorted(
        [
            "civil-affairs.allowance",
            "grid.verification",
            "registry.household",
            "rental-housing.tenancy",
            "social-security.pension",
            "webhooks",  # the fan-out to subscribed department systems
        ]
    )
    assert {task["kind"] for task in after["tasks"]} == {"verify_death", "household_head_needed"}
    act_as(CIVIL_AFFAIRS)
    assert client.get(f"/api/v1/exchange/events/{event_id}").status_code == 404


def test_the_event_log_keeps_no_identifying_fields(
    city: Session, act_as: Callable[[Actor], None], client: TestClient
) -> None:
    home = family(city)
    act_as(PUBLIC_SECURITY)

    client.post("/api/v1/exchange/events", json=event("death", home.head, occurred_at=DIED_AT))

    from citygrid.exchange.models import LifeEventRecord, OutboxEntry

    city.flush()
    stored = str([(e.facts, e.response_body) for e in city.query(LifeEventRecord)])
    stored += str([e.payload for e in city.query(OutboxEntry)])
    assert home.head.id_number not in stored and home.head.name not in stored
