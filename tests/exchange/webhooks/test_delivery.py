"""Deliveries: each matching outbox entry reaches each subscriber once, signed, carrying only
what its department may see, in order per person, retried with backoff while the receiver is
down, dead-lettered after too many attempts, and replayed on request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from citygrid.exchange import service as exchange
from citygrid.exchange.models import OutboxEntry
from citygrid.exchange.webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery
from citygrid.kit.actor import Actor
from citygrid.kit.models import utcnow
from citygrid.registry.models import HousingUnit, Person
from tests.exchange.story import (
    FAMILY_PLANNING,
    PUBLIC_SECURITY,
    event,
    family,
    flat,
    give_allowance,
    give_pension,
    resident,
)
from tests.exchange.webhooks.conftest import (
    API,
    CA_SYSTEM,
    HRSS_SYSTEM,
    PS_SYSTEM,
    RH_SYSTEM,
    SECRET,
    subscribe,
    webhook_told,
)
from tests.exchange.webhooks.receiver import Receiver, verify


def _deliveries(session: Session) -> list[WebhookDelivery]:
    return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_a_death_reaches_the_subscriber_signed_and_the_telling_is_logged(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
) -> None:
    home = family(city)
    sub = subscribe(client, act_as, CA_SYSTEM, receiver.url)
    act_as(PUBLIC_SECURITY)
    event_id = client.post("/api/v1/exchange/events", json=event("death", home.head)).json()[
        "event_id"
    ]

    send()

    [got] = receiver.wait_for(1)
    assert verify(SECRET, got.headers, got.body)
    assert not verify("another-secret-of-16+", got.headers, got.body)
    assert not verify(SECRET, got.headers, got.body + b" ")
    assert got.headers["x-citygrid-topic"] == "death"
    assert got.headers["content-type"] == "application/json"
    body = got.json
    assert body["id"] == got.delivery
    assert body["subscription"] == sub
    assert body["event"]["id"] == event_id
    assert body["event"]["type"] == "death"
    assert body["subject"]["ref"] == home.head.ref
    assert body["data"]["died_on"] == "2026-03-14"
    # Civil affairs sees identity masked: never the ID number or the name in clear.
    assert home.head.id_number not in got.body.decode()
    assert home.head.name not in got.body.decode()
    assert body["subject"]["id_number"] == home.head.id_number[:6] + "*" * 12
    assert body["subject"]["status"] == "deceased"
    [delivery] = _deliveries(city)
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("delivered", 1, 200)
    [attempt] = city.scalars(select(WebhookAttempt)).all()
    assert (attempt.status_code, attempt.error) == (200, None)
    # The access log names the department's system as told, once (at the fan-out; the
    # delivery itself is in the delivery log).
    [entry] = webhook_told(city)
    assert (entry.actor, entry.department) == (CA_SYSTEM.name, "civil-affairs")
    assert entry.subjects == [home.head.ref]
    assert entry.purpose == "life-event-notification"
    assert entry.detail["delivery"] == got.delivery
    assert entry.detail["subscription"] == sub
    assert entry.detail["event_id"] == event_id
    assert entry.detail["legal_basis"] == "statutory"
    assert entry.fields == ["identity", "household_registration"]  # was_head: a household tie


def test_each_department_gets_only_the_fields_it_may_see(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    send: Callable[..., object],
) -> None:
    receivers = {name: Receiver().start() for name in ("ps", "ca", "rh", "hrss")}
    try:
        subscribe(client, act_as, PS_SYSTEM, receivers["ps"].url)
        subscribe(client, act_as, CA_SYSTEM, receivers["ca"].url, topic="*")
        subscribe(client, act_as, RH_SYSTEM, receivers["rh"].url)
        subscribe(client, act_as, HRSS_SYSTEM, receivers["hrss"].url, topic="*")
        home = family(city)
        give_allowance(city, home.head)
        give_pension(city, home.head)
        exchange.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))

        send()

        [ps] = receivers["ps"].bodies()
        assert ps["subject"]["id_number"] == home.head.id_number  # public security: clear
        assert ps["subject"]["name"] == home.head.name
        assert ps["data"]["was_head"] is True
        ca = {body["topic"]: body for body in receivers["ca"].bodies()}
        assert set(ca) == {"subsistence_allowances", "death"}  # no pensions: hidden from it
        assert ca["death"]["data"]["was_head"] is True
        assert ca["death"]["subject"]["name"] == home.head.name[0] + "*" * (len(home.head.name) - 1)
        assert ca["subsistence_allowances"]["data"]["records"] == [
            {"amount": "1080.00", "status": "active", "since": "2019-07-01"}
        ]
        [rh] = receivers["rh"].bodies()
        assert "was_head" not in rh["data"]  # household registration is hidden from it
        assert rh["subject"]["id_number"] != home.head.id_number
        hrss = {body["topic"]: body for body in receivers["hrss"].bodies()}
        assert set(hrss) == {"pensions", "death"}
        assert hrss["pensions"]["data"]["records"][0]["amount"] == "3250.50"
        assert "was_head" not in hrss["death"]["data"]
    finally:
        for running in receivers.values():
            running.stop()


def test_people_outside_the_subscribers_territory_are_not_told(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
) -> None:
    street_system = Actor(
        name="ca-street-2",
        role="department_officer",
        department="civil-affairs",
        scopes=("440104002",),
        kind="client",
    )
    subscribe(client, act_as, street_system, receiver.url)
    home = family(city)  # in street 440104001
    exchange.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))

    send()

    assert receiver.received == []
    assert _deliveries(city) == []


def _story_of(session: Session, person: Person, new_home: HousingUnit) -> list[str]:
    """A person's life in three events, in the order they happened: a move, a marriage
    status, a death. Their types, in that order."""
    exchange.publish_event(
        session,
        PUBLIC_SECURITY,
        data=event(
            "move_in",
            person,
            unit_id=new_home.id,
            kind="actual_residence",
            occurred_at="2026-03-01T10:00:00+08:00",
        ),
    )
    exchange.publish_event(
        session,
        FAMILY_PLANNING,
        data=event(
            "marriage_status_changed",
            person,
            marital_status="divorced",
            occurred_at="2026-03-05T10:00:00+08:00",
        ),
    )
    exchange.publish_event(session, PUBLIC_SECURITY, data=event("death", person))
    return ["move_in", "marriage_status_changed", "death"]


def test_a_receiver_down_for_long_gets_retries_then_everything_in_order(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
) -> None:
    subscribe(client, act_as, CA_SYSTEM, receiver.url, topic="*")
    person = resident(city, home=flat(city))
    other = resident(city, home=flat(city, number="303"))
    receiver.stop()
    story = _story_of(city, person, flat(city, number="501"))
    exchange.publish_event(city, PUBLIC_SECURITY, data=event("death", other))

    start = utcnow() + timedelta(seconds=1)  # after the fan-out that send() runs first
    first = send(now=start)
    # One attempt per person: the person's later news waits behind the first.
    assert (first.claimed, first.retried) == (2, 2)
    moment = start
    waits = []
    for _round in range(5):
        waiting = [d for d in _deliveries(city) if d.attempts and d.subject_ref == person.ref]
        [head] = waiting
        waits.append(head.available_at.replace(tzinfo=None) - moment.replace(tzinfo=None))
        moment = head.available_at + timedelta(milliseconds=1)
        assert send(now=moment).claimed >= 1
    # Exponential backoff with jitter: each wait longer than the one before.
    seconds = [wait.total_seconds() for wait in waits]
    assert all(later > earlier for earlier, later in zip(seconds, seconds[1:], strict=False))
    assert 1 <= seconds[0] <= 2 and 16 <= seconds[-1] <= 32  # 2^n s, its second half random
    assert [d.attempts for d in _deliveries(city) if d.subject_ref == person.ref] == [6, 0, 0]

    receiver.start()
    send(now=moment + timedelta(hours=2))

    told = [b["event"]["type"] for b in receiver.bodies() if b["subject"]["ref"] == person.ref]
    assert told == story
    assert {d.state for d in _deliveries(city)} == {DeliveryState.DELIVERED}
    log = city.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id)).all()
    assert [a.error for a in log if a.error][:2] == ["ConnectError", "ConnectError"]


def test_after_too_many_attempts_a_delivery_is_dead_and_replay_sends_it(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
) -> None:
    sub = subscribe(client, act_as, CA_SYSTEM, receiver.url, topic="*")
    person = resident(city, home=flat(city))
    receiver.status = 503
    _story_of(city, person, flat(city, number="501"))

    moment = utcnow() + timedelta(seconds=1)
    for _round in range(3):
        send(now=moment, max_attempts=3)
        moment += timedelta(hours=1)
    first, *later = _deliveries(city)
    assert (first.state, first.attempts, first.last_status_code) == ("dead", 3, 503)
    # A dead delivery no longer holds the person's later ones back.
    assert later[0].attempts >= 1

    receiver.status = 200
    send(now=moment + timedelta(hours=1))
    assert [b["event"]["type"] for b in receiver.bodies()] == ["marriage_status_changed", "death"]

    act_as(CA_SYSTEM)
    log = client.get(f"{API}/{sub}/deliveries", params={"state": "dead"}).json()
    assert [item["id"] for item in log] == [first.uid]
    assert [a["status_code"] for a in log[0]["log"]] == [503, 503, 503]
    assert "body" not in log[0] and "payload" not in log[0]
    answer = client.post(f"{API}/{sub}/replay", json={"state": "dead"})
    assert answer.json() == {"replayed": 1}
    send()

    assert receiver.received[-1].json["event"]["type"] == "move_in"
    assert receiver.received[-1].delivery == first.uid  # the same idempotency key
    assert {d.state for d in _deliveries(city)} == {DeliveryState.DELIVERED}
    # Replaying by id, or something unknown, or in a state that cannot be replayed.
    assert client.post(f"{API}/{sub}/replay", json={"deliveries": [first.uid]}).json() == {
        "replayed": 1
    }
    assert client.post(f"{API}/{sub}/replay", json={"deliveries": ["nope"]}).status_code == 404
    assert client.post(f"{API}/{sub}/replay", json={"state": "pending"}).status_code == 422
    assert client.post(f"{API}/{sub}/replay", json={}).status_code == 422


def test_a_delivery_made_twice_reaches_the_receiver_under_one_id(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
    deliver: Callable[[], object],
) -> None:
    subscribe(client, act_as, CA_SYSTEM, receiver.url)
    home = family(city)
    exchange.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))
    send()
    # The outbox entry delivered again (a worker that outlived its lease): no second delivery.
    city.execute(
        update(OutboxEntry).values(state="claimed", claimed_until=utcnow() - timedelta(seconds=1))
    )
    send()

    assert len(_deliveries(city)) == 1
    assert len(receiver.received) == 1
