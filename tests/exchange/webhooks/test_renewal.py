"""A department system renews its subscription's lease (WebSub): its callback is challenged
again, and only when it echoes is the subscription active for the new lease; an expired or
failed subscription comes back that way; bad input names its field and changes nothing; only
the owning department may renew."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from citygrid.exchange.webhooks.models import Subscription
from citygrid.kit.actor import Actor
from citygrid.kit.models import utcnow
from tests.exchange.story import PUBLIC_SECURITY, event, family
from tests.exchange.webhooks.conftest import (
    ADMIN,
    API,
    CA_SYSTEM,
    PS_SYSTEM,
    post_subscription,
    subscribe,
)
from tests.exchange.webhooks.receiver import Receiver

YEAR = 365 * 86400


def _when(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _stored(session: Session, ref: str) -> dict[str, Any]:
    session.flush()
    session.expire_all()
    row = session.query(Subscription).filter_by(ref=ref).one()
    return {
        "state": row.state.value,
        "lease_seconds": row.lease_seconds,
        "verified_at": row.verified_at,
        "expires_at": row.expires_at,
        "failure_reason": row.failure_reason,
    }


def test_the_owner_renews_for_a_lease_of_its_choosing_after_a_new_challenge(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    ref = subscribe(client, act_as, CA_SYSTEM, receiver.url)
    first = _when(client.get(f"{API}/{ref}").json()["expires_at"])

    answer = client.post(f"{API}/{ref}/renew", json={"lease_seconds": 90 * 86400})

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == ref and body["state"] == "active"
    expires = _when(body["expires_at"])
    assert abs((expires - utcnow()).total_seconds() - 90 * 86400) < 60
    assert expires < first
    registration, renewal = receiver.challenges
    assert renewal["hub.mode"] == "subscribe" and renewal["hub.topic"] == "death"
    assert renewal["hub.lease_seconds"] == str(90 * 86400)
    assert renewal["hub.challenge"] != registration["hub.challenge"]
    assert _stored(city, ref)["lease_seconds"] == 90 * 86400
    # Without a body: the longest lease.
    longest = client.post(f"{API}/{ref}/renew")
    assert longest.status_code == 200
    assert receiver.challenges[-1]["hub.lease_seconds"] == str(YEAR)


def test_an_expired_subscription_gets_nothing_until_renewed_then_hears_again(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    send: Callable[..., object],
) -> None:
    ref = subscribe(client, act_as, CA_SYSTEM, receiver.url)
    city.execute(
        update(Subscription)
        .where(Subscription.ref == ref)
        .values(expires_at=utcnow() - timedelta(days=1))
    )
    act_as(PUBLIC_SECURITY)
    client.post("/api/v1/exchange/events", json=event("death", family(city).head))
    send()
    assert receiver.received == []

    act_as(CA_SYSTEM)
    assert client.post(f"{API}/{ref}/renew").status_code == 200
    act_as(PUBLIC_SECURITY)
    client.post("/api/v1/exchange/events", json=event("death", family(city).head))
    send()

    assert len(receiver.wait_for(1)) == 1
    assert receiver.bodies()[0]["subscription"] == ref


def test_a_subscription_whose_first_challenge_failed_is_active_once_its_callback_echoes(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    receiver.challenge = "missing"
    act_as(CA_SYSTEM)
    failed = post_subscription(client, receiver.url)
    ref = failed.json()["error"]["details"][0]["subscription"]
    assert _stored(city, ref)["state"] == "failed"

    receiver.challenge = "echo"
    answer = client.post(f"{API}/{ref}/renew")

    assert answer.status_code == 200, answer.text
    stored = _stored(city, ref)
    assert (stored["state"], stored["failure_reason"]) == ("active", None)
    assert stored["expires_at"] is not None


def test_a_callback_that_stops_echoing_keeps_the_subscription_as_it_was(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    ref = subscribe(client, act_as, CA_SYSTEM, receiver.url)
    before = _stored(city, ref)
    receiver.challenge = "wrong"

    answer = client.post(f"{API}/{ref}/renew", json={"lease_seconds": 86400})

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "callback_verification_failed"
    assert error["details"][0]["field"] == "callback_url"
    assert "challenge_mismatch" in error["details"][0]["reason"]
    assert _stored(city, ref) == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lease_seconds": 60}, "lease_seconds"),
        ({"lease_seconds": YEAR + 1}, "lease_seconds"),
        ({"lease_seconds": "forever"}, "lease_seconds"),
        ({"lease_seconds": 86400.5}, "lease_seconds"),
        ({"lease_days": 30}, "lease_days"),
    ],
)
def test_a_bad_lease_is_refused_naming_the_field_and_nothing_changes(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    receiver: Receiver,
    body: dict[str, Any],
    field: str,
) -> None:
    ref = subscribe(client, act_as, CA_SYSTEM, receiver.url)
    before = _stored(city, ref)

    answer = client.post(f"{API}/{ref}/renew", json=body)

    assert answer.status_code == 422, answer.text
    assert field in [detail["field"] for detail in answer.json()["error"]["details"]]
    assert len(receiver.challenges) == 1  # the registration's only
    assert _stored(city, ref) == before


def test_only_the_owning_department_renews(
    city: Session, act_as: Callable[[Actor], None], client: TestClient, receiver: Receiver
) -> None:
    ref = subscribe(client, act_as, CA_SYSTEM, receiver.url)
    before = _stored(city, ref)

    act_as(PS_SYSTEM)
    other = client.post(f"{API}/{ref}/renew")
    act_as(ADMIN)
    admin = client.post(f"{API}/{ref}/renew")
    act_as(CA_SYSTEM)
    unknown = client.post(f"{API}/whs_nosuchthing/renew")
    assert client.delete(f"{API}/{ref}").status_code == 204
    cancelled = client.post(f"{API}/{ref}/renew")

    assert (other.status_code, other.json()["error"]["code"]) == (404, "not_found")
    assert (admin.status_code, admin.json()["error"]["code"]) == (403, "not_the_owner")
    assert unknown.status_code == 404 and cancelled.status_code == 404
    assert len(receiver.challenges) == 1
    stored = _stored(city, ref)
    assert stored["state"] == "cancelled"
    assert {k: v for k, v in stored.items() if k != "state"} == {
        k: v for k, v in before.items() if k != "state"
    }
