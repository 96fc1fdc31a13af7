"""Several workers and publishers at once, on databases where transactions really commit:
no entry delivered twice, one person's events decided one at a time, the embedded worker
delivering within a second."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text

from citygrid.exchange import outbox, service
from citygrid.exchange.models import LifeEventRecord, OutboxDelivery, OutboxEntry, Task
from citygrid.exchange.tasks import periodic_tasks
from citygrid.kit import db as kit_db
from citygrid.kit.migrate import upgrade
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings, normalise_database_url
from citygrid.kit.worker import Worker
from citygrid.registry.models import Residence
from tests.conftest import POSTGRES_URL, _postgres_admin_engine
from tests.exchange.story import (
    PUBLIC_SECURITY,
    allowance,
    event,
    family,
    flat,
    give_allowance,
    give_pension,
    pension,
    tasks,
)
from tests.fixtures_territory import import_mini_city


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def committed_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of its own for this module, with the mini city, where work really commits."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('committed') / 'exchange.sqlite3'}"
        admin = None
    else:
        admin = _postgres_admin_engine()
        if admin is None:
            pytest.skip("PostgreSQL is not reachable")
        name = f"citygrid_exchange_{uuid.uuid4().hex[:10]}"
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


def _in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads started together; their results (or errors)."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # reported by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _drain(url: str) -> None:
    outbox.drain(kit_db.get_session_factory(url), worker_id="cleanup")


def test_two_workers_never_deliver_an_entry_twice(committed_url: str) -> None:
    with kit_db.unit_of_work(committed_url) as session:
        people = []
        for _ in range(30):
            home = family(session)
            give_allowance(session, home.head)
            give_pension(session, home.head)
            people.append(home.head)
    _drain(committed_url)
    with kit_db.unit_of_work(committed_url) as session:
        for person in people:
            service.publish_event(session, PUBLIC_SECURITY, data=event("death", person))
    factory = kit_db.get_session_factory(committed_url)

    def worker(index: int) -> list[int]:
        delivered: list[int] = []
        while True:
            entry_ids = outbox.claim(factory, worker_id=f"worker-{index}", batch=3)
            if not entry_ids:
                return delivered
            outbox.deliver(factory, entry_ids, worker_id=f"worker-{index}")
            delivered.extend(entry_ids)

    first, second = _in_threads(2, worker)

    assert isinstance(first, list) and isinstance(second, list), (first, second)
    assert not set(first) & set(second)
    assert len(first) + len(second) == 30
    if "postgresql" in committed_url:
        assert first and second  # both really took part
    with kit_db.unit_of_work(committed_url) as session:
        ids = [p.id for p in people]
        per_pair = session.execute(
            select(func.count())
            .select_from(OutboxDelivery)
            .group_by(OutboxDelivery.entry_id, OutboxDelivery.consumer)
            .having(func.count() > 1)
        ).all()
        assert per_pair == []
        kinds = Counter(
            kind
            for (kind,) in session.execute(select(Task.kind).where(Task.subject_person_id.in_(ids)))
        )
        assert kinds == Counter(
            {"allowance_review": 30, "household_head_needed": 30, "verify_death": 30}
        )
        for person in people:
            assert allowance(session, person).status.value == "suspended"
            assert pension(session, person).status.value == "stopped"


def test_concurrent_moves_of_one_person_end_in_the_latest_home(committed_url: str) -> None:
    with kit_db.unit_of_work(committed_url) as session:
        home = family(session)
        flats = [flat(session, number=f"{floor}01") for floor in range(1, 9)]
        person_number = home.spouse.id_number
        person_id = home.spouse.id
        flat_ids = [f.id for f in flats]
    days = list(range(1, 9))
    random.Random(7).shuffle(days)  # they arrive in any order
    factory = kit_db.get_session_factory(committed_url)

    def publish(index: int) -> dict[str, Any]:
        move = event(
            "move_in",
            person_number,
            unit_id=flat_ids[index],
            occurred_at=f"2026-02-{days[index]:02d}T10:00:00+08:00",
        )
        with factory() as session, session.begin():
            return service.publish_event(session, PUBLIC_SECURITY, data=move).body

    answers = _in_threads(8, publish)

    assert all(isinstance(answer, dict) for answer in answers), answers
    latest = flat_ids[days.index(8)]
    with kit_db.unit_of_work(committed_url) as session:
        homes = session.execute(
            select(Residence.unit_id, Residence.since, Residence.until)
            .where(Residence.person_id == person_id, Residence.unit_id.in_(flat_ids))
            .order_by(Residence.id)
        ).all()
        recorded = session.execute(
            select(func.count())
            .select_from(LifeEventRecord)
            .where(LifeEventRecord.person_id == person_id)
        ).scalar_one()
    # One open home, the latest; the moves applied, in the order they were decided, each
    # newer than the one before; every other move recorded as superseded.
    assert [unit_id for unit_id, _since, until in homes if until is None] == [latest]
    decided = [since for _unit_id, since, _until in homes]
    assert decided == sorted(decided) and len(set(decided)) == len(decided)
    assert len(homes) == sum(answer["applied"] for answer in answers)
    assert {a["reason"] for a in answers if not a["applied"]} <= {"superseded"}
    assert recorded == 8
    _drain(committed_url)


def test_the_same_event_published_at_once_is_applied_once(committed_url: str) -> None:
    with kit_db.unit_of_work(committed_url) as session:
        home = family(session)
        death = event("death", home.head)
        head_id = home.head.id
    factory = kit_db.get_session_factory(committed_url)

    def publish(_index: int) -> tuple[int, dict[str, Any]]:
        with factory() as session, session.begin():
            outcome = service.publish_event(session, PUBLIC_SECURITY, data=death)
            return outcome.status_code, outcome.body

    answers = _in_threads(6, publish)

    assert all(isinstance(answer, tuple) for answer in answers), answers
    assert len({str(answer) for answer in answers}) == 1
    with kit_db.unit_of_work(committed_url) as session:
        entries = session.scalars(
            select(OutboxEntry).where(
                OutboxEntry.subject_person_id == head_id, OutboxEntry.topic == "life_event.death"
            )
        ).all()
        assert len(entries) == 1
    _drain(committed_url)


def test_the_embedded_worker_delivers_a_death_within_a_second(committed_url: str) -> None:
    with kit_db.unit_of_work(committed_url) as session:
        home = family(session)
        give_allowance(session, home.head)
    _drain(committed_url)
    worker = Worker(
        periodic_tasks(Settings(database_url=committed_url, demo_mode=True)),
        database_url=committed_url,
    )
    with worker:
        published = time.monotonic()
        with kit_db.unit_of_work(committed_url) as session:
            service.publish_event(session, PUBLIC_SECURITY, data=event("death", home.head))
        deadline = published + 5
        while True:
            with kit_db.unit_of_work(committed_url) as session:
                done = {task.kind for task in tasks(session, home.head)}
                suspended = allowance(session, home.head).status.value == "suspended"
            if suspended and done == {"allowance_review", "household_head_needed", "verify_death"}:
                break
            assert time.monotonic() < deadline, "the reactions did not arrive in time"
            time.sleep(0.01)
        elapsed = time.monotonic() - published
    assert elapsed < 1.0
    assert worker.status()["exchange.outbox"].failures == 0


@pytest.mark.skipif(os.name != "posix", reason="needs fork/exec and signals")
def test_a_worker_process_killed_with_sigkill_loses_nothing(committed_url: str) -> None:
    """The real thing: a ``citygrid`` worker process killed mid-batch, then a new one."""
    import signal
    import subprocess
    import sys

    with kit_db.unit_of_work(committed_url) as session:
        people = [family(session).head for _ in range(40)]
        for person in people:
            service.publish_event(session, PUBLIC_SECURITY, data=event("death", person))
        ids = [p.id for p in people]
    script = (
        "import sys, time\n"
        "from citygrid.exchange import outbox, reactions\n"
        "from citygrid.kit.db import get_session_factory\n"
        "registry = outbox.ConsumerRegistry([*reactions.REGISTRY])\n"
        "@registry.consumer('slow', topics=['life_event.death'])\n"
        "def slow(session, message):\n"
        "    print('delivering', flush=True); time.sleep(0.05)\n"
        "outbox.drain(get_session_factory(sys.argv[1]), worker_id='doomed', batch=40,"
        " registry=registry)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, committed_url], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    for _ in range(5):  # let it deliver a few, then kill it mid-batch
        process.stdout.readline()
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    later = utcnow() + outbox.DEFAULT_LEASE + outbox.backoff(1)
    report = outbox.drain(
        kit_db.get_session_factory(committed_url), worker_id="successor", now=later
    )

    assert report.failed == 0
    with kit_db.unit_of_work(committed_url) as session:
        pending = session.execute(
            select(func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.subject_person_id.in_(ids), OutboxEntry.state != "delivered")
        ).scalar_one()
        assert pending == 0
        doubled = session.execute(
            select(OutboxDelivery.entry_id, OutboxDelivery.consumer)
            .group_by(OutboxDelivery.entry_id, OutboxDelivery.consumer)
            .having(func.count() > 1)
        ).all()
        assert doubled == []
        verify = session.execute(
            select(func.count())
            .select_from(Task)
            .where(Task.subject_person_id.in_(ids), Task.kind == "verify_death")
        ).scalar_one()
        assert verify == 40


def test_concurrent_batches_about_the_same_people_end_in_the_latest_homes(
    committed_url: str,
) -> None:
    with kit_db.unit_of_work(committed_url) as session:
        people = [family(session).head for _ in range(6)]
        numbers = [person.id_number for person in people]
        person_ids = [person.id for person in people]
        flat_ids = [flat(session, number=f"{floor}02").id for floor in range(1, 5)]
    shuffler = random.Random(11)
    days = list(range(1, 5))
    shuffler.shuffle(days)  # batch b moves everyone into flat b on day days[b]
    batches = []
    for batch_index in range(4):
        moves = [
            event(
                "move_in",
                number,
                unit_id=flat_ids[batch_index],
                occurred_at=f"2026-05-{days[batch_index]:02d}T10:00:00+08:00",
            )
            for number in numbers
        ]
        shuffler.shuffle(moves)  # each batch names the people in another order
        batches.append(moves)
    factory = kit_db.get_session_factory(committed_url)

    def publish(index: int) -> list[int]:
        with factory() as session, session.begin():
            items = service.publish_events(session, PUBLIC_SECURITY, events=batches[index])
            return [item.status_code for item in items]

    answers = _in_threads(4, publish)

    assert answers == [[202] * 6] * 4, answers
    latest = flat_ids[days.index(4)]
    with kit_db.unit_of_work(committed_url) as session:
        open_homes = session.execute(
            select(Residence.person_id, Residence.unit_id).where(
                Residence.person_id.in_(person_ids),
                Residence.unit_id.in_(flat_ids),
                Residence.until.is_(None),
            )
        ).all()
    assert sorted(open_homes) == sorted((person_id, latest) for person_id in person_ids)
    _drain(committed_url)
