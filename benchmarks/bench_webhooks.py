"""Webhook delivery: signed POSTs to a local receiver per second, on SQLite and PostgreSQL.

    .venv/bin/python -m benchmarks.bench_webhooks [--people 2500] [--subscriptions 4]
        [--postgres URL | --no-postgres]

Target (issue: data exchange): at least 500 webhook deliveries/s to a local receiver.

Set-up: the mini city with ``--people`` residents; ``--subscriptions`` subscriptions (civil
affairs, on different callback paths of one receiver) to ``subsistence_allowances``; civil
affairs publishes an allowance for everyone, the outbox fans each change out into one
delivery per subscription, the body built and the "told" access-log entry appended by the
access gateway (timed: the fan-out rate), then the sender (the worker's
``delivery.run_once`` rounds: claim 200, POST concurrently over keep-alive connections,
record the outcomes and the attempts in one transaction) sends them all (timed: the
delivery rate). The receiver is a separate process (uvicorn with
a tiny ASGI app) that checks every signature and counts.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

from tests.fixtures_territory import MINI_GRID_CODES, import_mini_city  # noqa: E402

from citygrid.exchange import outbox, service  # noqa: E402
from citygrid.exchange.webhooks import delivery  # noqa: E402
from citygrid.exchange.webhooks import service as webhooks  # noqa: E402
from citygrid.kit.actor import Actor  # noqa: E402
from citygrid.kit.db import dispose_engines, get_session_factory  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.settings import Settings  # noqa: E402
from citygrid.registry import service as registry  # noqa: E402
from citygrid.registry.idnumber import make_id_numbers  # noqa: E402

CLERK = Actor(name="bench", role="grid_worker")
CIVIL_AFFAIRS = Actor(
    name="ca-bench",
    role="department_officer",
    department="civil-affairs",
    scopes=("440104",),
    kind="client",
)
SECRET = "bench-secret-0123456789abcdef"  # noqa: S105 - the benchmark's own receiver

# ============================================================================ the receiver

_counts = {"ok": 0, "bad": 0}


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A department system's receiver: verifies the signature, counts, answers 204."""
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["method"] == "GET":
        # citygrid's challenge is echoed; any other GET asks for the counts.
        query = dict(parse_qsl(scope.get("query_string", b"").decode()))
        text = query.get("hub.challenge", f"{_counts['ok']} {_counts['bad']}").encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": text})
        return
    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    timestamp = headers.get("x-citygrid-timestamp", "0")
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    good = hmac.compare_digest(
        "sha256=" + expected.hexdigest(), headers.get("x-citygrid-signature", "")
    )
    _counts["ok" if good else "bad"] += 1
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    """The receiver in its own process, on a free port of 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.bench_webhooks:receiver_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base + "/count", timeout=1).read()  # noqa: S310 - local
            return process, base
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the receiver did not start")


def received(base: str) -> tuple[int, int]:
    """(signatures that verified, signatures that did not) so far."""
    ok, bad = urllib.request.urlopen(base + "/count", timeout=5).read().split()  # noqa: S310
    return int(ok), int(bad)


# ============================================================================ the run


def populate(url: str, people: int) -> list[str]:
    """The mini city with ``people`` residents; their ID numbers."""
    factory = get_session_factory(url)
    numbers = make_id_numbers(
        "440104",
        [date(1940, 1, 1) + timedelta(days=i % 18_000) for i in range(people)],
        [(i // 18_000) % 1000 for i in range(people)],
    )
    with factory.begin() as session:
        import_mini_city(session)
    for offset in range(0, people, 500):
        with factory.begin() as session:
            for index in range(offset, min(offset + 500, people)):
                registry.create_person(
                    session,
                    CLERK,
                    data={
                        "grid_code": MINI_GRID_CODES[index % len(MINI_GRID_CODES)],
                        "id_number": numbers[index],
                        "name": "测试居民",
                        "ethnicity": "01",
                        "population_type": "registered",
                    },
                )
    return numbers


def run(url: str, label: str, *, people: int, subscriptions: int, base: str) -> None:
    """Populate, subscribe, publish, fan out, send; print the figures."""
    upgrade(url)
    settings = Settings(database_url=url, demo_mode=True)
    numbers = populate(url, people)
    factory = get_session_factory(url)
    with factory.begin() as session:
        for index in range(subscriptions):
            webhooks.subscribe(
                session,
                CIVIL_AFFAIRS,
                data={
                    "topic": "subsistence_allowances",
                    "callback_url": f"{base}/hooks/{index}",
                    "secret": SECRET,
                },
                settings=settings,
            )
    before_ok, _bad = received(base)
    for offset in range(0, people, 10_000):
        with factory.begin() as session:
            service.publish_records(
                session,
                CIVIL_AFFAIRS,
                dataset="subsistence_allowances",
                data={
                    "records": [
                        {
                            "id_number": n,
                            "amount": "1080.00",
                            "status": "active",
                            "since": "2019-07-01",
                        }
                        for n in numbers[offset : offset + 10_000]
                    ]
                },
            )
    started = time.perf_counter()
    outbox.drain(factory, worker_id="bench-fan-out", batch=500)
    fanned = time.perf_counter() - started
    expected = people * subscriptions
    started = time.perf_counter()
    with delivery.Sender(settings) as sender:
        report = delivery.drain(factory, sender, worker_id="bench-sender", max_rounds=100_000)
    elapsed = time.perf_counter() - started
    ok, bad = received(base)
    print(f"{label}:")
    print(
        f"  fan-out: {people:,} outbox entries -> {expected:,} deliveries in {fanned:.1f} s "
        f"({expected / fanned:,.0f} deliveries/s)"
    )
    print(
        f"  sending: {report.delivered:,} delivered ({report.retried} to retry, "
        f"{report.dead} dead) in {elapsed:.1f} s = {report.delivered / elapsed:,.0f} deliveries/s "
        f"(receiver: {ok - before_ok:,} signatures verified, {bad} not)"
    )
    assert report.delivered == expected == ok - before_ok, (report, ok, expected)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2500)
    parser.add_argument("--subscriptions", type=int, default=4)
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "CITYGRID_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    process, base = start_receiver()
    try:
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / 'webhooks-bench.sqlite3'}"
            run(
                url, "SQLite (WAL)", people=args.people, subscriptions=args.subscriptions, base=base
            )
        if args.no_postgres:
            return
        name = f"citygrid_bench_{uuid.uuid4().hex[:8]}"
        admin = args.postgres
        try:
            subprocess.run(
                ["psql", admin.replace("+psycopg", ""), "-qc", f'CREATE DATABASE "{name}"'],
                check=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            print(f"PostgreSQL: skipped ({type(exc).__name__})")
            return
        url = f"{admin.rsplit('/', 1)[0]}/{name}"
        try:
            run(url, "PostgreSQL", people=args.people, subscriptions=args.subscriptions, base=base)
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
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
