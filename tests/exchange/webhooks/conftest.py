"""Fixtures of the webhook tests: a real receiver, department systems with a territory, and
a way to run the sender inside the test's rolled-back transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.audit.models import AuditEntry
from citygrid.exchange import outbox
from citygrid.exchange.webhooks import delivery, service
from citygrid.exchange.webhooks.models import Subscription
from citygrid.kit.actor import Actor
from citygrid.kit.settings import Settings
from tests.exchange.webhooks.receiver import Receiver

DISTRICT = "440104"


def department(name: str, slug: str, scopes: tuple[str, ...] = (DISTRICT,)) -> Actor:
    """A department system's API client, seeing the district."""
    return Actor(
        name=name, role="department_officer", department=slug, scopes=scopes, kind="client"
    )


PS_SYSTEM = department("ps-hukou-system", "public-security")
CA_SYSTEM = department("ca-dibao-system", "civil-affairs")
RH_SYSTEM = department("rental-registry", "rental-housing")
HRSS_SYSTEM = department("hrss-pension-system", "social-security")
WATER_SYSTEM = department("water-billing", "water-affairs")
ADMIN = Actor(name="admin-01", role="admin", kind="account")
SECRET = "s3cr3t-of-the-dibao-system-0001"
API = "/api/v1/exchange/subscriptions"


def post_subscription(
    client: TestClient, callback_url: str, topic: str = "death", **extra: str
) -> Response:
    """Ask for a subscription as whoever acts now, with ``SECRET``; the answer as it comes."""
    return client.post(
        API, json={"topic": topic, "callback_url": callback_url, "secret": SECRET, **extra}
    )


def subscribe(
    client: TestClient,
    act_as: Callable[[Actor], None],
    actor: Actor,
    callback_url: str,
    topic: str = "death",
) -> str:
    """``actor`` subscribes its callback to ``topic`` (asserts it is accepted): the id."""
    act_as(actor)
    answer = post_subscription(client, callback_url, topic)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def subscribe_through_service(
    session: Session,
    settings: Settings,
    callback_url: str,
    *,
    actor: Actor = CA_SYSTEM,
    topic: str = "death",
) -> Subscription:
    """``actor`` (civil affairs unless told) subscribes with ``SECRET``, without HTTP."""
    return service.subscribe(
        session,
        actor,
        data={"topic": topic, "callback_url": callback_url, "secret": SECRET},
        settings=settings,
    )


def webhook_told(session: Session) -> list[AuditEntry]:
    """The access log's "told" entries of the webhooks, oldest first."""
    statement = select(AuditEntry).where(AuditEntry.action == "told").order_by(AuditEntry.id)
    return [
        entry
        for entry in session.scalars(statement)
        if (entry.detail or {}).get("channel") == "webhook"
    ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A department system's receiver listening on 127.0.0.1."""
    running = Receiver().start()
    yield running
    running.stop()


@pytest.fixture
def sender(settings: Settings) -> Iterator[delivery.Sender]:
    """The webhook sender of the test's settings (demo mode: local callbacks allowed)."""
    with delivery.Sender(settings) as running:
        yield running


@pytest.fixture
def send(
    db_session: Session,
    sessions: outbox.SessionFactory,
    deliver: Callable[[], outbox.DeliveryReport],
    sender: delivery.Sender,
) -> Callable[..., delivery.RoundReport]:
    """Fan the outbox out, then send every webhook due at ``now`` (default: now)."""

    def _send(now: datetime | None = None, max_attempts: int | None = None) -> delivery.RoundReport:
        deliver()
        report = delivery.drain(
            sessions, sender, worker_id="test-sender", now=now, max_attempts=max_attempts
        )
        db_session.expire_all()
        return report

    return _send
