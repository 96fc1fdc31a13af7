"""The purge of finished outbox entries: delivered ones go after their retention with their
consumers' records, dead ones later, waiting and in-flight ones never; a dry run changes
nothing; and an old publish sent again still gets its first answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from citygrid.exchange import outbox, retention, service
from citygrid.exchange.models import OutboxDelivery, OutboxEntry
from citygrid.exchange.scoreboard import scoreboard
from citygrid.exchange.tasks import PURGE_TASK, periodic_tasks
from citygrid.kit.actor import Actor
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from tests.exchange.story import PUBLIC_SECURITY, event, family, give_allowance, tasks

Deliver = Callable[[], outbox.DeliveryReport]


def _count(session: Session, model: type) -> int:
    session.flush()
    session.expire_all()
    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _states(session: Session) -> dict[int, str]:
    session.expire_all()
    return {entry.id: entry.state.value for entry in session.scalars(select(OutboxEntry))}


def _death_told(city: Session, deliver: Deliver) -> None:
    """A resident with an allowance dies; every reaction is applied."""
    home = family(city)
    give_allowance(city, home.head)
    service.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))
    report = deliver()
    assert report.failed == 0


def test_delivered_entries_go_after_their_retention_with_their_consumers_records(
    city: Session, sessions: outbox.SessionFactory, deliver: Deliver
) -> None:
    _death_told(city, deliver)
    entries, records = _count(city, OutboxEntry), _count(city, OutboxDelivery)
    assert entries >= 2 and records >= 5
    now = utcnow()

    early = retention.purge(sessions, now=now + timedelta(days=29))
    assert early.rows == 0 and _count(city, OutboxEntry) == entries

    late = retention.purge(sessions, now=now + timedelta(days=31))

    assert (late.outbox_entries, late.consumer_records) == (entries, records)
    assert _count(city, OutboxEntry) == 0 and _count(city, OutboxDelivery) == 0
    assert retention.purge(sessions, now=now + timedelta(days=31)).rows == 0


def test_a_pending_or_claimed_entry_is_never_purged(
    city: Session, sessions: outbox.SessionFactory, deliver: Deliver
) -> None:
    home = family(city)
    give_allowance(city, home.head)
    service.publish_event(city, PUBLIC_SECURITY, data=event("death", home.head))
    city.flush()
    now = utcnow()
    # One entry held by a worker that died long ago: claimed, its lease long run out.
    claimed = min(_states(city))
    city.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == claimed)
        .values(state="claimed", claimed_until=now - timedelta(days=400))
    )
    waiting = _states(city)
    assert set(waiting.values()) == {"pending", "claimed"}

    report = retention.purge(sessions, now=now + timedelta(days=3650))

    assert report.rows == 0
    assert _states(city) == waiting
    # They are still delivered, and the death's reactions still happen.
    deliver()
    assert set(_states(city).values()) == {"delivered"}
    assert {task.kind for task in tasks(city, home.head)} >= {"verify_death"}


def test_a_dead_entry_is_kept_past_the_delivered_ones_retention(
    city: Session, sessions: outbox.SessionFactory, deliver: Deliver
) -> None:
    _death_told(city, deliver)
    now = utcnow()
    dead = min(_states(city))
    city.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == dead)
        .values(state="dead", delivered_at=None, available_at=now)
    )

    retention.purge(sessions, now=now + timedelta(days=91))
    assert _states(city) == {dead: "dead"}

    retention.purge(sessions, now=now + timedelta(days=181))
    assert _states(city) == {}


def test_a_dry_run_changes_nothing_and_counts_what_the_purge_then_deletes(
    city: Session, sessions: outbox.SessionFactory, deliver: Deliver
) -> None:
    _death_told(city, deliver)
    _death_told(city, deliver)
    before = (_count(city, OutboxEntry), _count(city, OutboxDelivery))
    later = utcnow() + timedelta(days=31)

    dry = retention.purge(sessions, now=later, dry_run=True)

    assert (_count(city, OutboxEntry), _count(city, OutboxDelivery)) == before
    assert dry.dry_run and (dry.outbox_entries, dry.consumer_records) == before
    done = retention.purge(sessions, now=later)
    assert (done.outbox_entries, done.consumer_records) == before
    assert _count(city, OutboxEntry) == 0


def test_the_purge_goes_a_window_at_a_time_and_stops_at_young_entries(
    city: Session, sessions: outbox.SessionFactory, deliver: Deliver
) -> None:
    for _ in range(3):
        _death_told(city, deliver)
    ids = sorted(_states(city))
    assert len(ids) >= 6
    old, young = ids[:4], ids[4:]
    long_ago = utcnow() - timedelta(days=40)
    city.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id.in_(old))
        .values(created_at=long_ago, available_at=long_ago, delivered_at=long_ago)
    )

    report = retention.purge(sessions, batch=2)

    assert report.outbox_entries == 4
    assert report.transactions == 3  # two windows of old entries, one reaching young ones
    assert sorted(_states(city)) == young


def test_an_old_publish_sent_again_still_gets_its_first_answer(
    city: Session,
    act_as: Callable[[Actor], None],
    client: TestClient,
    sessions: outbox.SessionFactory,
    deliver: Deliver,
) -> None:
    home = family(city)
    give_allowance(city, home.head)
    death = event("death", home.head)
    act_as(PUBLIC_SECURITY)
    first = client.post("/api/v1/exchange/events", json=death)
    assert first.status_code == 202, first.text
    deliver()
    event_id = first.json()["event_id"]
    status_before = client.get(f"/api/v1/exchange/events/{event_id}").json()
    assert status_before["outbox"]
    standing = {d.slug: d.events_published for d in scoreboard(city).departments}

    purged = retention.purge(sessions, now=utcnow() + timedelta(days=31))
    again = client.post("/api/v1/exchange/events", json=death)

    assert purged.outbox_entries >= 1
    assert again.status_code == first.status_code
    assert again.json() == first.json()
    # The event's own answer and its tasks stay; only the delivery records went.
    status_after = client.get(f"/api/v1/exchange/events/{event_id}").json()
    assert status_after["outbox"] == []
    assert status_after["tasks"] == status_before["tasks"]
    assert {d.slug: d.events_published for d in scoreboard(city).departments} == standing


def test_the_worker_purges_at_the_interval_the_settings_name(database_url: str) -> None:
    hourly = Settings(database_url=database_url, demo_mode=True)
    never = Settings(database_url=database_url, demo_mode=True, purge_interval_minutes=0)

    [purge] = [task for task in periodic_tasks(hourly) if task.name == PURGE_TASK]

    assert purge.interval == 3600
    assert PURGE_TASK not in {task.name for task in periodic_tasks(never)}
    assert retention.Retention.from_settings(hourly) == retention.Retention(
        outbox=timedelta(days=30), webhooks=timedelta(days=90), dead=timedelta(days=180)
    )
