"""Case intake without a photo: cases created per second at the service level and over HTTP
(``POST /api/v1/cases`` through a real uvicorn server), on SQLite.

    .venv/bin/python -m benchmarks.bench_cases [--cases 3000] [--requests 3000] [--threads 4]

Each case is committed on its own (one request, one transaction), with an Idempotency-Key
(so the key lookup is part of the cost), in the mini city of the tests (10 grids).
Over HTTP the caller is a district dispatcher account with a bearer token (``--auth
bearer``, the default: the token check is part of the cost), or fixed by a dependency
override (``--auth override``: ``--factory benchmarks.bench_cases:bench_app``).

Target (issue "Cases"): at least 300 cases/s sustained on SQLite without a photo.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

import httpx  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from tests.fixtures_territory import (  # noqa: E402
    MINI_GRID_CODES,
    mini_city_collection,
    point_in_grid,
)

from citygrid.cases import service  # noqa: E402
from citygrid.cases.schemas import CaseCreate  # noqa: E402
from citygrid.kit.actor import SYSTEM, Actor  # noqa: E402
from citygrid.kit.db import dispose_engines, unit_of_work  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.settings import sqlite_url  # noqa: E402
from citygrid.territory.locator import Locator  # noqa: E402
from citygrid.territory.service import import_feature_collection  # noqa: E402

DISPATCHER = Actor(name="bench.dispatcher", role="dispatcher", scopes=("440104",))
CATEGORIES = ("C0201", "C0101", "C0105", "E0101", "E0403", "E0401", "E0502")


def bench_app() -> FastAPI:
    """The app with the caller fixed to a district dispatcher (uvicorn factory)."""
    from citygrid.access.deps import current_actor
    from citygrid.app import create_app

    app = create_app()
    app.dependency_overrides[current_actor] = lambda: DISPATCHER
    return app


def report(rng: random.Random) -> dict[str, Any]:
    """A plausible report somewhere in the mini city."""
    lon, lat = point_in_grid(rng.choice(MINI_GRID_CODES))
    return {
        "category": rng.choice(CATEGORIES),
        "description": "Benchmark report: broken pavement tiles in front of the shop",
        "priority": rng.choice(("urgent", "high", "normal")),
        "lat": lat + rng.uniform(-0.0003, 0.0003),
        "lon": lon + rng.uniform(-0.0003, 0.0003),
        "address": "12 Jiefang Road",
    }


def prepare(url: str) -> None:
    """Migrate the database and import the mini city."""
    upgrade(url)
    with unit_of_work(url) as session:
        import_feature_collection(session, SYSTEM, collection=mini_city_collection())


def dispatcher_token(url: str) -> str:
    """A bearer token of a new district dispatcher account (demo secret)."""
    from citygrid.access import accounts
    from citygrid.access.tokens import issue_token
    from citygrid.kit.settings import Settings

    settings = Settings(database_url=url, demo_mode=True)
    with unit_of_work(url) as session:
        created = accounts.create_account(
            session,
            SYSTEM,
            settings=settings,
            username=DISPATCHER.name,
            password="Bench-dispatcher-2026-intake",  # noqa: S106 - a throwaway database
            role=DISPATCHER.role,
            scopes=DISPATCHER.scopes,
        )
        account_id = created.account.id
    return issue_token(
        settings.require_secret_key(), kind="account", subject_id=account_id, ttl_seconds=3600
    )


def bench_service(url: str, cases: int) -> tuple[float, float]:
    """Cases per second through ``service.create_case``, one transaction each: by the wall
    clock, and by this process's CPU time (the capacity of one core)."""
    rng = random.Random(1)
    with unit_of_work(url) as session:
        locator = Locator.from_session(session)
    reports = [CaseCreate.model_validate(report(rng)) for _ in range(cases)]
    started, cpu_started = time.perf_counter(), time.process_time()
    for data in reports:
        with unit_of_work(url) as session:
            service.create_case(
                session, DISPATCHER, data=data, locator=locator, idempotency_key=uuid.uuid4().hex
            )
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return cases / wall, cases / cpu


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not answer /healthz within 30 s")
        time.sleep(0.05)


def _post_many(
    base_url: str,
    bodies: list[dict[str, Any]],
    latencies: list[float],
    failures: list[int],
    headers: dict[str, str],
) -> None:
    with httpx.Client(base_url=base_url, timeout=30, headers=headers) as client:
        for body in bodies:
            started = time.perf_counter()
            response = client.post(
                "/api/v1/cases", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
            )
            latencies.append(1000 * (time.perf_counter() - started))
            if response.status_code != 201:
                failures.append(response.status_code)


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time so far of a process and its children (uvicorn's workers)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    pids.append(int(entry.name))
            except (OSError, IndexError):
                continue
    ticks = 0
    for member in pids:
        try:
            fields = _stat(member)
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def bench_http(
    url: str, requests: int, threads: int, auth: str, workers: int = 1
) -> dict[str, Any]:
    """Sequential and concurrent intake through a uvicorn server in a subprocess."""
    headers: dict[str, str] = {}
    factory = "benchmarks.bench_cases:bench_app"
    if auth == "bearer":
        headers["Authorization"] = f"Bearer {dispatcher_token(url)}"
        dispose_engines()
        factory = "citygrid.app:create_app"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "CITYGRID_DATABASE_URL": url, "CITYGRID_DEMO_MODE": "true"}
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--workers",
        str(workers),
    ]
    rng = random.Random(2)
    server = subprocess.Popen(command, env=env)
    figures: dict[str, Any] = {}
    try:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            _wait_for(client)
        _post_many(base_url, [report(rng) for _ in range(50)], [], [], headers)  # warm-up
        sequential: list[float] = []
        failures: list[int] = []
        cpu_before = cpu_seconds(server.pid)
        started = time.perf_counter()
        _post_many(base_url, [report(rng) for _ in range(requests)], sequential, failures, headers)
        figures["sequential_rate"] = requests / (time.perf_counter() - started)
        figures["server_cpu_ms"] = 1000 * (cpu_seconds(server.pid) - cpu_before) / requests
        figures["sequential"] = sequential
        figures["sequential_failures"] = len(failures)

        concurrent: list[float] = []
        concurrent_failures: list[int] = []
        per_thread = requests // threads
        workers = [
            threading.Thread(
                target=_post_many,
                args=(
                    base_url,
                    [report(rng) for _ in range(per_thread)],
                    concurrent,
                    concurrent_failures,
                    headers,
                ),
            )
            for _ in range(threads)
        ]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        figures["concurrent_rate"] = per_thread * threads / (time.perf_counter() - started)
        figures["concurrent"] = concurrent
        figures["concurrent_failures"] = Counter(concurrent_failures)
    finally:
        server.terminate()
        server.wait(timeout=10)
    return figures


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--auth", choices=("bearer", "override"), default="bearer")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="citygrid-bench-") as directory:
        url = sqlite_url(Path(directory) / "cases.sqlite3")
        prepare(url)
        print("Case intake without a photo, SQLite (WAL), one transaction per case")
        print(f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        wall_rate, cpu_rate = bench_service(url, args.cases)
        print(
            f"  service.create_case                 {wall_rate:8.0f} cases/s  "
            f"({cpu_rate:.0f}/s per CPU-second, {args.cases} cases)"
        )
        dispose_engines()
        figures = bench_http(url, args.requests, args.threads, args.auth, args.workers)
        sequential, concurrent = figures["sequential"], figures["concurrent"]
        print(f"  HTTP caller: {args.auth}, uvicorn workers: {args.workers}")
        print(
            f"  POST /api/v1/cases, 1 client        {figures['sequential_rate']:8.0f} cases/s  "
            f"p50 {statistics.median(sequential):5.2f} ms  "
            f"p99 {_percentile(sequential, 0.99):5.2f} ms  ({args.requests} requests, "
            f"{figures['sequential_failures']} failed)"
        )
        print(
            f"  server CPU per case                 {figures['server_cpu_ms']:8.2f} ms  "
            f"(one server core: {1000 / figures['server_cpu_ms']:.0f} cases/s)"
        )
        failed = sum(figures["concurrent_failures"].values())
        print(
            f"  POST /api/v1/cases, {args.threads} clients       "
            f"{figures['concurrent_rate']:8.0f} cases/s  "
            f"p50 {statistics.median(concurrent):5.2f} ms  "
            f"p99 {_percentile(concurrent, 0.99):5.2f} ms  "
            f"({failed} failed: {dict(figures['concurrent_failures'])})"
        )
        met = figures["sequential_rate"] >= 300 and not figures["sequential_failures"]
        print(f"  target >= 300 cases/s over HTTP (1 client): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
