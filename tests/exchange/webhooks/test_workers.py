"""Webhook senders on databases where work really commits: two workers never send a delivery
twice, and the worker embedded in the app tells a subscriber of a death within seconds."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text

from citygrid.exchange import outbox
from citygrid.exchange import service as exchange
from citygrid.exchange.tasks import periodic_tasks as outbox_tasks
from citygrid.exchange.webhooks import delivery
from citygrid.exchange.webhooks.models import WebhookDelivery
from citygrid.exchange.webhooks.tasks import periodic_tasks as webhook_tasks
from citygrid.kit import db as kit_db
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import Settings, normalise_database_url
from citygrid.kit.worker import Worker
from tests.conftest import POSTGRES_URL, _postgres_admin_engine
from tests.exchange.story import PUBLIC_SECURITY, event, family
from tests.exchange.webhooks.conftest import CA_SYSTEM, PS_SYSTEM, SECRET, subscribe_through_service
from tests.exchange.webhooks.receiver import Receiver, verify
from tests.fixtures_territory import import_mini_city


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def committed_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of its own for this module, with the mini city, where work really commits."""
    admin = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('webhooks') / 'webhooks.sqlite3'}"
    else:
        admin = _postgres_admin_engine()
        if admin is None:
            pytest.skip("PostgreSQL is not reachable")
        name = f"citygrid_webhooks_{uuid.uuid4().hex[:10]}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = f"{normalise_database_url(POSTGRES_URL).rsplit('/', 1)[0]}/{name}"
    upgrade(url)
    with kit_db.unit_of_work(url) as session:
        import_mini_city(session)
    try:
        yield url
    finally:
        kit_db.dispose_engines()
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A department system's receiver on 127.0.0.1."""
    running = Receiver().start()
    yield running
    running.stop()


def _settings(url: str) -> Settings:
    return Settings(database_url=url, demo_mode=True, webhook_concurrency=8)


def test_two_workers_never_send_a_delivery_twice(committed_url: str, receiver: Receiver) -> None:
    settings = _settings(committed_url)
    with kit_db.unit_of_work(committed_url) as session:
        for actor in (CA_SYSTEM, PS_SYSTEM):
            subscribe_through_service(session, settings, receiver.url, actor=actor)
        for _ in range(30):
            home = family(session)
            exchange.publish_event(session, PUBLIC_SECURITY, data=event("death", home.head))
    factory = kit_db.get_session_factory(committed_url)
    outbox.drain(factory, worker_id="fan-out")
    start = threading.Barrier(2)
    claimed: list[list[int]] = [[], []]

    def work(index: int) -> None:
        with delivery.Sender(settings) as sender:
            start.wait()
            while True:
                rows = delivery.claim(factory, worker_id=f"sender-{index}", batch=7)
                if not rows:
                    return
                outcomes = sender.post_all(rows)
                delivery.record(
                    factory, rows, outcomes, worker_id=f"sender-{index}", max_attempts=5
                )
                claimed[index].extend(row[0] for row in rows)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    received = receiver.wait_for(60)
    assert len(received) == 60
    assert set(Counter(item.delivery for item in received).values()) == {1}
    assert not set(claimed[0]) & set(claimed[1])
    assert all(verify(SECRET, item.headers, item.body) for item in received)
    with kit_db.unit_of_work(committed_url) as session:
        states = dict(
            session.execute(
                select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)
            ).all()
        )
    assert states == {"delivered": 60}


def test_the_embedded_worker_tells_a_subscriber_of_a_death_within_seconds(
    committed_url: str, receiver: Receiver
) -> None:
    settings = _settings(committed_url)
    with kit_db.unit_of_work(committed_url) as session:
        subscribe_through_service(session, settings, receiver.url)
        home = family(session)
        ref, id_number = home.head.ref, home.head.id_number
    worker = Worker([*outbox_tasks(settings), *webhook_tasks(settings)], database_url=committed_url)
    with worker:
        published = time.monotonic()
        with kit_db.unit_of_work(committed_url) as session:
            exchange.publish_event(session, PUBLIC_SECURITY, data=event("death", id_number))
        received = receiver.wait_for(1, timeout=15)
        elapsed = time.monotonic() - published

    assert [item.json["subject"]["ref"] for item in received] == [ref]
    assert elapsed < 10  # the workers poll every 0.05 and 0.2 s; a loaded machine is slow
