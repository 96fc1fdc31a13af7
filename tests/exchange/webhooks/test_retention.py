"""The purge of webhook deliveries: delivered ones go with their attempts after their
retention, and the outbox entry they held goes with them; dead ones are kept until replayed
or half a year old; a delivery still waiting to be sent is never purged."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.exchange import outbox, retention
from citygrid.exchange import service as exchange
from citygrid.exchange.models import OutboxEntry
from citygrid.exchange.webhooks import delivery, service
from citygrid.exchange.webhooks.models import WebhookAttempt, WebhookDelivery
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from tests.exchange.story import PUBLIC_SECURITY, event, family
from tests.exchange.webhooks.conftest import CA_SYSTEM, subscribe_through_service
from tests.exchange.webhooks.receiver import Receiver

Send = Callable[..., delivery.RoundReport]


def _count(session: Session, model: type) -> int:
    session.flush()
    session.expire_all()
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _death_entry(session: Session) -> OutboxEntry | None:
    session.expire_all()
    return session.scalars(
        select(OutboxEntry).where(OutboxEntry.topic == "life_event.death")
    ).first()


def _subscribed_death(session: Session, settings: Settings, receiver: Receiver) -> str:
    """Civil affairs' system subscribes to deaths; public security publishes one."""
    subscription = subscribe_through_service(session, settings, receiver.url)
    exchange.publish_event(session, PUBLIC_SECURITY, data=event("death", family(session).head))
    return subscription.ref


def test_a_delivered_webhook_goes_with_its_attempts_after_its_retention_and_frees_its_entry(
    city: Session,
    settings: Settings,
    receiver: Receiver,
    send: Send,
    sessions: outbox.SessionFactory,
) -> None:
    _subscribed_death(city, settings, receiver)
    assert send().delivered == 1
    assert (_count(city, WebhookDelivery), _count(city, WebhookAttempt)) == (1, 1)
    now = utcnow()

    # Past the outbox's retention the entry stays: its delivery still points at it.
    first = retention.purge(sessions, now=now + timedelta(days=31))
    assert first.webhook_deliveries == 0
    assert _death_entry(city) is not None

    second = retention.purge(sessions, now=now + timedelta(days=91))

    assert (second.webhook_deliveries, second.webhook_attempts) == (1, 1)
    assert (_count(city, WebhookDelivery), _count(city, WebhookAttempt)) == (0, 0)
    assert _death_entry(city) is None


def test_a_dead_delivery_is_kept_until_replayed_or_half_a_year_old(
    city: Session,
    settings: Settings,
    receiver: Receiver,
    send: Send,
    sessions: outbox.SessionFactory,
) -> None:
    ref = _subscribed_death(city, settings, receiver)
    receiver.status = 503
    send(now=utcnow() + timedelta(seconds=1), max_attempts=1)
    [dead] = city.scalars(select(WebhookDelivery)).all()
    assert dead.state == "dead"
    now = utcnow()

    assert retention.purge(sessions, now=now + timedelta(days=91)).rows == 0
    dry = retention.purge(sessions, now=now + timedelta(days=181), dry_run=True)
    assert (dry.webhook_deliveries, dry.webhook_attempts, dry.outbox_entries) == (1, 1, 1)
    assert _count(city, WebhookDelivery) == 1

    # Replayed, it is waiting again: never purged, however old.
    assert service.replay(city, CA_SYSTEM, ref=ref, data={"state": "dead"}) == 1
    city.flush()
    assert retention.purge(sessions, now=now + timedelta(days=3650)).rows == 0
    assert _count(city, WebhookDelivery) == 1 and _death_entry(city) is not None

    receiver.status = 503
    send(now=utcnow() + timedelta(seconds=1), max_attempts=1)
    gone = retention.purge(sessions, now=utcnow() + timedelta(days=181))
    assert (gone.webhook_deliveries, gone.webhook_attempts) == (1, 2)
    assert _count(city, WebhookDelivery) == 0 and _death_entry(city) is None


def test_a_delivery_waiting_to_be_sent_and_its_entry_are_never_purged(
    city: Session,
    settings: Settings,
    receiver: Receiver,
    deliver: Callable[[], outbox.DeliveryReport],
    sessions: outbox.SessionFactory,
) -> None:
    _subscribed_death(city, settings, receiver)
    deliver()  # fanned out, not sent
    [waiting] = city.scalars(select(WebhookDelivery)).all()
    assert waiting.state == "pending"

    report = retention.purge(sessions, now=utcnow() + timedelta(days=3650))

    assert report.webhook_deliveries == 0
    city.expire_all()
    assert city.get(WebhookDelivery, waiting.id) is not None
    assert _death_entry(city) is not None
