"""Data exchange: death -> every internal reaction committed (latency), and sustained ingest
of life events, on SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.bench_exchange [--people 4000] [--deaths 300]
        [--events 5000] [--postgres URL | --no-postgres]

Targets (issue: data exchange): a death accepted -> every internal reaction committed,
p99 <= 1 s with the embedded worker on SQLite; sustained ingest >= 1,000 life events/s on
SQLite (PostgreSQL beside it).

The worker is the kit worker with the exchange's periodic task at its real polling interval
(``tasks.OUTBOX_INTERVAL`` / ``IDLE_WAIT``). The latency is measured twice: published in the
worker's process (a commit wakes it at once, as in ``citygrid serve``), and as if published
by another process (the wake-up disabled: the worker finds it at its next poll).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

from sqlalchemy import select  # noqa: E402
from tests.fixtures_territory import MINI_GRID_CODES, import_mini_city, point_in_grid  # noqa: E402

from citygrid.exchange import outbox, service  # noqa: E402
from citygrid.exchange.models import OutboxEntry, OutboxState  # noqa: E402
from citygrid.exchange.tasks import IDLE_WAIT, OUTBOX_INTERVAL, periodic_tasks  # noqa: E402
from citygrid.kit.actor import Actor  # noqa: E402
from citygrid.kit.db import dispose_engines, get_session_factory  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.settings import Settings  # noqa: E402
from citygrid.kit.worker import Worker  # noqa: E402
from citygrid.registry import service as registry  # noqa: E402
from citygrid.registry.idnumber import make_id_numbers  # noqa: E402

CLERK = Actor(name="bench", role="grid_worker")
PUBLIC_SECURITY = Actor(
    name="ps-bench", role="department_officer", department="public-security", kind="client"
)
FAMILY_PLANNING = Actor(
    name="fp-bench", role="department_officer", department="family-planning", kind="client"
)
RENTAL_HOUSING = Actor(
    name="rh-bench", role="department_officer", department="rental-housing", kind="client"
)
CIVIL_AFFAIRS = Actor(
    name="ca-bench", role="department_officer", department="civil-affairs", kind="client"
)
SOCIAL_SECURITY = Actor(
    name="ss-bench", role="department_officer", department="social-security", kind="client"
)

_clock = datetime(2025, 1, 1, tzinfo=UTC)


def next_moment() -> str:
    """An always later moment in the past, so that every event is the newest of its person."""
    global _clock
    _clock += timedelta(seconds=7)
    return _clock.isoformat()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


# ============================================================================ population


def populate(url: str, people: int) -> tuple[list[str], list[int]]:
    """The mini city with ``people`` residents, each in a flat, with an allowance, a pension
    and a tenancy each; returns their ID numbers and the flats' ids."""
    factory = get_session_factory(url)
    numbers = make_id_numbers(
        "440104",
        [date(1940, 1, 1) + timedelta(days=i % 18_000) for i in range(people)],
        [(i // 18_000) % 1000 for i in range(people)],
    )
    flats: list[int] = []
    with factory.begin() as session:
        import_mini_city(session)
        for index, grid_code in enumerate(MINI_GRID_CODES):
            lon, lat = point_in_grid(grid_code)
            building = registry.create_building(
                session,
                CLERK,
                data={
                    "grid_code": grid_code,
                    "address": f"越秀区测试路 {index + 1} 号",
                    "lon": lon,
                    "lat": lat,
                    "floors": 30,
                },
            )
            for floor in range(1, 31):
                for door in range(1, 5):
                    unit = registry.create_housing_unit(
                        session,
                        CLERK,
                        data={
                            "building_id": building.id,
                            "floor": floor,
                            "number": f"{floor}{door:02d}",
                            "use": "rental",
                        },
                    )
                    flats.append(unit.id)
    start = time.perf_counter()
    chunk = 500
    for offset in range(0, people, chunk):
        with factory.begin() as session:
            for index in range(offset, min(offset + chunk, people)):
                grid_code = MINI_GRID_CODES[index % len(MINI_GRID_CODES)]
                person = registry.create_person(
                    session,
                    CLERK,
                    data={
                        "grid_code": grid_code,
                        "id_number": numbers[index],
                        "name": "测试居民",
                        "ethnicity": "01",
                        "population_type": "registered",
                        "marital_status": "married",
                    },
                )
                registry.create_residence(
                    session,
                    CLERK,
                    data={
                        "person_id": person.id,
                        "unit_id": flats[index % len(flats)],
                        "kind": "actual_residence",
                        "since": date(2010, 1, 1),
                    },
                )
    for dataset, actor, row in (
        (
            "subsistence_allowances",
            CIVIL_AFFAIRS,
            {"amount": "1080.00", "status": "active", "since": "2019-07-01"},
        ),
        (
            "pensions",
            SOCIAL_SECURITY,
            {"amount": "3250.50", "status": "active", "since": "2015-01-01"},
        ),
    ):
        for offset in range(0, people, 10_000):
            with factory.begin() as session:
                service.publish_records(
                    session,
                    actor,
                    dataset=dataset,
                    data={
                        "records": [
                            {"id_number": number, **row}
                            for number in numbers[offset : offset + 10_000]
                        ]
                    },
                )
    for offset in range(0, people, 10_000):
        with factory.begin() as session:
            service.publish_records(
                session,
                RENTAL_HOUSING,
                dataset="tenancies",
                data={
                    "records": [
                        {
                            "id_number": number,
                            "unit_id": flats[(offset + i + 7) % len(flats)],
                            "since": "2021-09-01",
                        }
                        for i, number in enumerate(numbers[offset : offset + 10_000])
                    ]
                },
            )
    outbox.drain(factory, worker_id="setup", batch=1000)
    print(
        f"  population: {people:,} residents with allowance, pension and tenancy "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return numbers, flats


@contextmanager
def embedded_worker(url: str) -> Iterator[Worker]:
    worker = Worker(periodic_tasks(Settings(database_url=url, demo_mode=True)), database_url=url)
    with worker:
        yield worker


@contextmanager
def no_wake_up() -> Iterator[None]:
    """As if the events were published by another process: commits do not wake the worker."""

    class _Deaf(threading.Event):
        def set(self) -> None:
            return None

    original = outbox._work_arrived
    outbox._work_arrived = _Deaf()
    try:
        yield
    finally:
        outbox._work_arrived = original


# ============================================================================ latency


def death_latency(url: str, numbers: list[str], deaths: int, *, wake: bool) -> list[float]:
    """Seconds from each death's commit to the commit of its last reaction."""
    factory = get_session_factory(url)
    latencies: list[float] = []
    with embedded_worker(url), nullcontext() if wake else no_wake_up():
        time.sleep(0.5)  # the worker is up and idle
        for number in numbers[:deaths]:
            with factory.begin() as session:
                outcome = service.publish_event(
                    session,
                    PUBLIC_SECURITY,
                    data={
                        "type": "death",
                        "source_event_id": uuid.uuid4().hex,
                        "occurred_at": next_moment(),
                        "id_number": number,
                    },
                )
                event_id = outcome.body["event_id"]
                entry_id = session.scalars(
                    select(OutboxEntry.id)
                    .where(OutboxEntry.topic == "life_event.death")
                    .order_by(OutboxEntry.id.desc())
                    .limit(1)
                ).one()
            committed = time.perf_counter()
            while True:
                with factory() as session:
                    state = session.scalars(
                        select(OutboxEntry.state).where(OutboxEntry.id == entry_id)
                    ).one()
                if state is OutboxState.DELIVERED:
                    break
                if time.perf_counter() - committed > 30:
                    raise RuntimeError(f"event {event_id} not delivered in 30 s")
                time.sleep(0.001)
            latencies.append(time.perf_counter() - committed)
            # Deaths arrive one at a time, a little apart, as a department system sends them.
            time.sleep(0.02)
    return latencies


def report_latency(label: str, latencies: list[float]) -> None:
    print(
        f"  death -> all reactions committed ({label}, n={len(latencies)}): "
        f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p95 {percentile(latencies, 0.95) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms"
    )


# ============================================================================ ingest


def life_events(
    numbers: list[str], flats: list[int], count: int, *, start: int = 0
) -> list[tuple[Actor, dict]]:
    """A mix of life events, each the newest of its person: moves, marriages, tenancies.

    Event ``n`` is about person ``n mod P``; its kind moves on by one at each pass over the
    persons, and a phase starts where the one before ended (``start``): each event is a
    fresh fact for its person (a repeated one, a move into the flat the person lives in, is
    recorded but changes nothing, and would flatter the rate)."""
    mix: list[tuple[Actor, dict[str, Any]]] = []
    for n in range(start, start + count):
        number = numbers[n % len(numbers)]
        lap = n // len(numbers)
        kind = (n + lap) % 10
        base = {
            "source_event_id": uuid.uuid4().hex,
            "occurred_at": next_moment(),
            "id_number": number,
        }
        if kind < 4:
            mix.append(
                (
                    PUBLIC_SECURITY,
                    {**base, "type": "move_in", "unit_id": flats[(n * 7) % len(flats)]},
                )
            )
        elif kind < 6:
            mix.append((PUBLIC_SECURITY, {**base, "type": "move_out"}))
        elif kind < 8:
            status = ("divorced", "married")[(n + lap) % 2]
            mix.append(
                (
                    FAMILY_PLANNING,
                    {**base, "type": "marriage_status_changed", "marital_status": status},
                )
            )
        elif kind == 8:
            mix.append(
                (
                    RENTAL_HOUSING,
                    {**base, "type": "tenancy_started", "unit_id": flats[(n * 11) % len(flats)]},
                )
            )
        else:
            mix.append(
                (
                    RENTAL_HOUSING,
                    {**base, "type": "tenancy_ended", "unit_id": flats[(n * 11) % len(flats)]},
                )
            )
    return mix


def department_batches(
    events: list[tuple[Actor, dict]], size: int
) -> list[tuple[Actor, list[dict]]]:
    """The events as each department system would send them: its own events, in order, in
    batches of up to ``size``."""
    batches: list[tuple[Actor, list[dict]]] = []
    pending: dict[str | None, tuple[Actor, list[dict]]] = {}
    for actor, data in events:
        buffer = pending.setdefault(actor.department, (actor, []))
        buffer[1].append(data)
        if len(buffer[1]) == size:
            batches.append(pending.pop(actor.department))
    batches.extend(pending.values())
    return batches


@dataclass
class Rate:
    """Events per second of wall time and per CPU second of this process (the worker's
    delivery included when it runs alongside): the machine is shared, and CPU time shows
    the cost of an event whatever the load."""

    events: int
    wall: float
    cpu: float

    def __str__(self) -> str:
        return (
            f"{self.events / self.wall:,.0f} events/s "
            f"({self.cpu / self.events * 1000:.2f} ms CPU per event)"
        )


@contextmanager
def measured(count: int, rates: list[Rate]) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    yield
    rates.append(Rate(count, time.perf_counter() - wall, time.process_time() - cpu))


def ingest(url: str, events: list[tuple[Actor, dict]], *, per_transaction: int) -> None:
    """Publish the events one by one (``publish_event``), ``per_transaction`` per commit."""
    factory = get_session_factory(url)
    for offset in range(0, len(events), per_transaction):
        with factory.begin() as session:
            for actor, data in events[offset : offset + per_transaction]:
                service.publish_event(session, actor, data=data)


def ingest_batches(url: str, events: list[tuple[Actor, dict]], *, size: int) -> None:
    """Publish the events in department batches of ``size`` (``publish_events``), a
    transaction each."""
    factory = get_session_factory(url)
    for actor, batch in department_batches(events, size):
        with factory.begin() as session:
            items = service.publish_events(session, actor, events=batch)
            refused = [item.status_code for item in items if item.status_code >= 400]
            if refused:
                raise RuntimeError(f"refused: {refused[:5]}")


def http_client(url: str) -> tuple[Any, dict[str, Actor]]:
    """The app behind an in-process HTTP client, the caller chosen by ``current["actor"]``."""
    from fastapi.testclient import TestClient

    from citygrid.access.deps import current_actor
    from citygrid.app import create_app

    app = create_app(Settings(database_url=url, demo_mode=True))
    current: dict[str, Actor] = {}
    app.dependency_overrides[current_actor] = lambda: current["actor"]
    return TestClient(app), current


def ingest_http(url: str, events: list[tuple[Actor, dict]]) -> None:
    """Publish the events one request each through the app (in-process HTTP client)."""
    client, current = http_client(url)
    for actor, data in events:
        current["actor"] = actor
        response = client.post("/api/v1/exchange/events", json=data)
        if response.status_code != 202:
            raise RuntimeError(response.text)


def ingest_http_batches(url: str, events: list[tuple[Actor, dict]], *, size: int) -> None:
    """Publish the events in department batches of ``size``, one request each."""
    client, current = http_client(url)
    for actor, batch in department_batches(events, size):
        current["actor"] = actor
        response = client.post("/api/v1/exchange/events/batch", json={"events": batch})
        if response.status_code != 200 or response.json()["refused"]:
            raise RuntimeError(response.text[:500])


def wait_drained(url: str, timeout: float = 600) -> float:
    """Seconds until the outbox has nothing pending."""
    factory = get_session_factory(url)
    start = time.perf_counter()
    while True:
        with factory() as session:
            counts = outbox.counts(session)
        if not counts.get("pending") and not counts.get("claimed"):
            return time.perf_counter() - start
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"outbox not drained: {counts}")
        time.sleep(0.05)


def sustained(url: str, label: str, count: int, publish: Callable[[], None]) -> None:
    """Publish with the embedded worker delivering alongside; print the publishing rate and
    the rate at which the events were published and every reaction committed (from the
    first publish until the outbox is drained)."""
    published: list[Rate] = []
    drained: list[Rate] = []
    with embedded_worker(url):
        with measured(count, published):
            publish()
        with measured(count, drained):
            wait_drained(url)
    both = Rate(count, published[0].wall + drained[0].wall, published[0].cpu + drained[0].cpu)
    print(f"  {label}: published at {published[0]}")
    print(f"    published and every reaction committed: {both}")


def run(url: str, label: str, *, people: int, deaths: int, events: int) -> None:
    print(f"{label}:")
    upgrade(url)
    numbers, flats = populate(url, people)
    report_latency("same process, woken at commit", death_latency(url, numbers, deaths, wake=True))
    if label.startswith("SQLite"):
        report_latency(
            f"other process, poll every {OUTBOX_INTERVAL + IDLE_WAIT:.2f} s at most",
            death_latency(url, numbers[deaths:], deaths, wake=False),
        )
    alive = numbers[2 * deaths :]
    # Each phase continues the sequence of events where the one before ended: fresh facts.
    sent = 0
    mix = life_events(alive, flats, events, start=sent)
    sent += len(mix)
    sustained(
        url,
        "service, one event per transaction",
        len(mix),
        lambda: ingest(url, mix, per_transaction=1),
    )
    mix = life_events(alive, flats, events, start=sent)
    sent += len(mix)
    sustained(
        url,
        "service, batches of 100 (publish_events)",
        len(mix),
        lambda: ingest_batches(url, mix, size=100),
    )
    few = life_events(alive, flats, min(events, 2000), start=sent)
    sent += len(few)
    sustained(
        url,
        "HTTP, one event per request",
        len(few),
        lambda: ingest_http(url, few),
    )
    mix = life_events(alive, flats, events, start=sent)
    sustained(
        url,
        "HTTP, batches of 100 per request",
        len(mix),
        lambda: ingest_http_batches(url, mix, size=100),
    )
    dispose_engines()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=4000)
    parser.add_argument("--deaths", type=int, default=300)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "CITYGRID_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite:///{Path(directory) / 'exchange-bench.sqlite3'}"
        run(url, "SQLite (WAL)", people=args.people, deaths=args.deaths, events=args.events)
    if args.no_postgres:
        return
    name = f"citygrid_bench_{uuid.uuid4().hex[:8]}"
    admin = args.postgres
    try:
        subprocess.run(
            ["psql", admin.replace("+psycopg", ""), "-qc", f'CREATE DATABASE "{name}"'], check=True
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"PostgreSQL: skipped ({type(exc).__name__})")
        return
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    try:
        run(url, "PostgreSQL", people=args.people, deaths=args.deaths, events=args.events)
    finally:
        dispose_engines()
        subprocess.run(
            [
                "psql",
                admin.replace("+psycopg", ""),
                "-qc",
                f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
            ],
            check=False,
        )


if __name__ == "__main__":
    main()
