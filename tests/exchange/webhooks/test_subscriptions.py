"""A department system subscribes: its callback must echo citygrid's challenge (as WebSub
does), bad input is refused naming the field with nothing stored, and a department only
ever sees and touches its own subscriptions."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.exchange.webhooks.models import Subscription, WebhookDelivery
from citygrid.kit.actor import Actor
from citygrid.kit.errors import ValidationFailed
from citygrid.kit.settings import Settings
from tests.exchange.story import CLERK, PUBLIC_SECURITY, event, family
from tests.exchange.webhooks.conftest import (
    ADMIN,
    API,
    CA_SYSTEM,
    HRSS_SYSTEM,
    PS_SYSTEM,
    SECRET,
    WATER_SYSTEM,
    post_subscription,
    subscribe_through_service,
)
from tests.exchange.webhooks.receiver import Receiver


def _count(session: Session, model: type) -> int:
    session.flush()
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_a_callback_that_echoes_the_challenge_is_subscribed(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    act_as(CA_SYSTEM)

    answer = post_subscription(client, receiver.url)

    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["state"] == "active"
    assert body["topic"] == "death"
    assert body["department"] == "civil-affairs"
    assert "secret" not in body and SECRET not in answer.text
    assert answer.headers["Location"] == f"{API}/{body['id']}"
    [challenge] = receiver.challenges
    assert challenge["hub.mode"] == "subscribe"
    assert challenge["hub.topic"] == "death"
    assert len(challenge["hub.challenge"]) >= 32
    assert int(challenge["hub.lease_seconds"]) == 365 * 86400
    listed = client.get(API).json()
    assert [item["id"] for item in listed] == [body["id"]]
    assert client.get(f"{API}/{body['id']}").json()["state"] == "active"
    # The secret is stored encrypted, never as given.
    stored = city.scalars(select(Subscription)).one()
    assert SECRET not in stored.secret_encrypted


@pytest.mark.parametrize(
    ("behaviour", "reason"), [("wrong", "challenge_mismatch"), ("missing", "status 404")]
)
def test_a_callback_that_does_not_echo_the_challenge_is_refused_and_nothing_is_delivered_to_it(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
    behaviour: str,
    reason: str,
) -> None:
    receiver.challenge = behaviour
    act_as(CA_SYSTEM)

    answer = post_subscription(client, receiver.url)

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "callback_verification_failed"
    assert error["details"][0]["field"] == "callback_url"
    assert reason in error["details"][0]["reason"]
    [kept] = client.get(API).json()
    assert (kept["state"], kept["failure_reason"]) == ("failed", reason)

    home = family(city)
    act_as(PUBLIC_SECURITY)
    assert client.post("/api/v1/exchange/events", json=event("death", home.head)).status_code == 202
    send()
    assert _count(city, WebhookDelivery) == 0
    assert receiver.received == []


def test_a_callback_that_is_down_is_refused(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    receiver.stop()
    act_as(CA_SYSTEM)

    answer = post_subscription(client, receiver.url)

    assert answer.status_code == 422
    assert answer.json()["error"]["details"][0]["reason"].endswith("(ConnectError)")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"callback_url": "ftp://127.0.0.1/hook"}, "callback_url"),
        ({"callback_url": "http:///nohost"}, "callback_url"),
        ({"callback_url": "http://user:pw@127.0.0.1/hook"}, "callback_url"),
        ({"callback_url": "http://127.0.0.1/hook#part"}, "callback_url"),
        ({"callback_url": "http://127.0.0.1/" + "a" * 2000}, "callback_url"),
        ({"callback_url": "http://127.0.0.1:99999/hook"}, "callback_url"),
        ({"topic": "weather"}, "topic"),
        ({"topic": ""}, "topic"),
        ({"secret": "short"}, "secret"),
        ({"secret": "with spaces in the secret"}, "secret"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_stored(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    change: dict[str, str],
    field: str,
) -> None:
    act_as(CA_SYSTEM)
    data = {"topic": "death", "callback_url": receiver.url, "secret": SECRET} | change

    answer = client.post(API, json=data)

    assert answer.status_code == 422, answer.text
    assert field in [detail["field"] for detail in answer.json()["error"]["details"]]
    assert SECRET not in answer.text
    assert receiver.challenges == []  # refused before anything was called
    assert _count(city, Subscription) == 0


def test_private_and_loopback_callbacks_are_refused_unless_allowed(
    city: Session, receiver: Receiver
) -> None:
    strict = Settings(
        database_url="sqlite://",
        demo_mode=False,
        secret_key="k" * 40,
        webhook_allow_private_callbacks=False,
    )
    for url in (
        receiver.url,
        "http://10.0.0.8/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
        "http://localhost/hook",
        "http://192.168.1.20/hook",
    ):
        with pytest.raises(ValidationFailed) as refused:
            subscribe_through_service(city, strict, url)
        assert refused.value.details[0]["field"] == "callback_url"
    assert receiver.challenges == []
    assert _count(city, Subscription) == 0
    # Demo mode (and these tests) allow them unless told otherwise.
    assert Settings(demo_mode=True).webhook_private_callbacks_allowed
    assert not Settings(demo_mode=False, secret_key="k" * 40).webhook_private_callbacks_allowed


def test_a_topic_whose_data_the_department_may_not_see_is_refused(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    act_as(HRSS_SYSTEM)  # social security sees pensions, not allowances
    refused = post_subscription(client, receiver.url, topic="subsistence_allowances")
    act_as(WATER_SYSTEM)  # no grant of addresses: it may not hear of moves
    moves = post_subscription(client, receiver.url, topic="move_in")

    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "topic_not_granted")
    assert (moves.status_code, moves.json()["error"]["code"]) == (403, "topic_not_granted")
    assert _count(city, Subscription) == 0
    act_as(WATER_SYSTEM)
    assert post_subscription(client, receiver.url, topic="death").status_code == 201


def test_someone_elses_subscription_is_not_found_and_stays_as_it_was(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    act_as(CA_SYSTEM)
    mine = post_subscription(client, receiver.url).json()["id"]

    act_as(PS_SYSTEM)
    assert client.get(API).json() == []
    for answer in (
        client.get(f"{API}/{mine}"),
        client.delete(f"{API}/{mine}"),
        client.get(f"{API}/{mine}/deliveries"),
        client.post(f"{API}/{mine}/replay", json={"state": "dead"}),
        client.get(f"{API}/whs_nosuchthing"),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "not_found"

    act_as(CA_SYSTEM)
    assert client.get(f"{API}/{mine}").json()["state"] == "active"
    act_as(ADMIN)  # an administrator sees every department's
    assert [item["id"] for item in client.get(API).json()] == [mine]
    act_as(CLERK)  # a grid worker has no subscriptions
    assert client.get(API).status_code == 403
    assert post_subscription(client, receiver.url).status_code == 403


def test_a_deleted_subscription_gets_nothing_more(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
) -> None:
    act_as(CA_SYSTEM)
    mine = post_subscription(client, receiver.url).json()["id"]

    assert client.delete(f"{API}/{mine}").status_code == 204
    assert client.get(f"{API}/{mine}").status_code == 404
    assert client.delete(f"{API}/{mine}").status_code == 404
    home = family(city)
    act_as(PUBLIC_SECURITY)
    client.post("/api/v1/exchange/events", json=event("death", home.head))
    send()

    assert receiver.received == []
    assert _count(city, WebhookDelivery) == 0
