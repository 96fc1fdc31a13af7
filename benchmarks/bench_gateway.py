"""The access gateway over HTTP on a real uvicorn server (in this process, in a thread).

    .venv/bin/python -m benchmarks.bench_gateway --db /tmp/bench/demo-1m.sqlite3

1. The grid worker zhangsijun's list of the seed grid 440104001001002 (903 residents, masked,
   audited): p50 / p99 with the access log on, and the same list with the log switched off
   (``citygrid.audit.service.append`` patched to a no-op in this process), side by side: the
   two alternate in rounds on the same server so that drift hits both alike. Targets: p99 at
   most 30 ms; the log's overhead at most 25 %.
2. Search by a full ID number (half of them inside her grid, half elsewhere in the city, which
   must find nobody): p99 at most 5 ms.

Also printed: the stack's floor (``GET /healthz``), the time spent inside the persons routes
(gateway, encoding, commit), and CPU time per list. ``--no-autocheckpoint`` shows what moving
SQLite's WAL checkpoints off the request path would give (the audited list writes ~20 kB).

The benchmark signs nobody in: it overrides ``current_actor`` with the grid worker's actor, as
the tests do. It appends real entries to the database's access log (the reads are real).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from sqlalchemy import event
from sqlalchemy.engine import Engine

from citygrid.access import persons_api
from citygrid.access.deps import current_actor
from citygrid.app import create_app
from citygrid.audit import service as audit_service
from citygrid.kit.actor import Actor
from citygrid.kit.db import unit_of_work
from citygrid.kit.migrate import current_revision
from citygrid.kit.settings import Settings

SEED_GRID = "440104001001002"
PURPOSE = "patrol-update"
LIST_PATH = f"/api/v1/grids/{SEED_GRID}/persons"
ZHANGSIJUN = Actor(name="zhangsijun", role="grid_worker", scopes=(SEED_GRID,), kind="account")


def _no_autocheckpoint(dbapi_connection: Any, _record: Any) -> None:
    # Each audited list appends ~20 kB to the WAL; every ~200 requests one of them would copy
    # 4 MB back into the database file and fsync it, inside the request.
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Server:
    """uvicorn serving the app in a background thread."""

    def __init__(self, url: str) -> None:
        app = create_app(Settings(database_url=url, demo_mode=True))
        app.dependency_overrides[current_actor] = lambda: ZHANGSIJUN
        self.port = _free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *_exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def _timed(call: Callable[[], httpx.Response]) -> float:
    start = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
    return elapsed


def _line(label: str, samples: list[float]) -> str:
    return (
        f"{label:34s} p50 {statistics.median(samples):6.2f} ms   "
        f"p99 {_percentile(samples, 0.99):6.2f} ms   max {max(samples):7.2f} ms   "
        f"(n={len(samples)})"
    )


def _no_append(_session: Any, _record: Any) -> int:
    return 0


class RouteTimer:
    """Time spent inside the persons routes' work (gateway, encoding, commit), per phase:
    what is left of a request's latency is the HTTP stack's (middleware, dependencies)."""

    def __init__(self) -> None:
        self.phase = "warm-up"
        self.samples: dict[str, list[float]] = {}
        self._run = persons_api._run

        def timed_run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return self._run(*args, **kwargs)
            finally:
                elapsed = (time.perf_counter() - started) * 1000
                self.samples.setdefault(self.phase, []).append(elapsed)

        persons_api._run = timed_run  # type: ignore[assignment]


def bench_list(
    client: httpx.Client, timer: RouteTimer, *, rounds: int, per_round: int
) -> dict[str, list[float]]:
    """The seed grid's list, alternating rounds with and without the access log."""
    params = {"purpose": PURPOSE, "limit": 1000}
    first = client.get(LIST_PATH, params=params)
    first.raise_for_status()
    body = first.json()
    if body["total"] != len(body["items"]):
        raise RuntimeError("the list did not fit in one answer")
    print(f"list: {body['total']} residents, {len(first.content):,} bytes; e.g. {body['items'][0]}")
    real_append = audit_service.append
    samples: dict[str, list[float]] = {"audited": [], "unaudited": []}
    cpu: dict[str, float] = {"audited": 0.0, "unaudited": 0.0}
    for _ in range(30):  # warm up both paths
        client.get(LIST_PATH, params=params)
    try:
        for round_number in range(rounds * 2):
            mode = "audited" if round_number % 2 == 0 else "unaudited"
            timer.phase = f"list, {mode}"
            audit_service.append = real_append if mode == "audited" else _no_append  # type: ignore[assignment]
            started = time.process_time()
            for _ in range(per_round):
                samples[mode].append(_timed(lambda: client.get(LIST_PATH, params=params)))
            cpu[mode] += time.process_time() - started
    finally:
        audit_service.append = real_append  # type: ignore[assignment]
    for mode, seconds in cpu.items():
        # CPU time of this process (server and client) per request: unlike latency, it does
        # not grow when other programs compete for the machine.
        samples[f"cpu {mode}"] = [seconds * 1000 / (rounds * per_round)]
    return samples


def _id_numbers(url: str, count: int, seed: int) -> list[str]:
    from sqlalchemy import bindparam, text

    with unit_of_work(url) as session:
        inside = [
            row[0]
            for row in session.execute(
                text("SELECT id_number FROM persons WHERE grid_code = :grid"), {"grid": SEED_GRID}
            )
        ]
        highest = session.execute(text("SELECT max(id) FROM persons")).scalar_one()
        picks = random.Random(seed).sample(range(1, highest + 1), count)
        others = text(
            "SELECT id_number FROM persons WHERE id IN :ids AND grid_code != :grid"
        ).bindparams(bindparam("ids", expanding=True))
        outside = [row[0] for row in session.execute(others, {"ids": picks, "grid": SEED_GRID})]
    rng = random.Random(seed)
    chosen = rng.sample(inside, min(count // 2, len(inside))) + outside[: count // 2]
    rng.shuffle(chosen)
    return chosen


def bench_search(
    client: httpx.Client, timer: RouteTimer, id_numbers: list[str]
) -> tuple[list[float], int]:
    """Search by full ID number (POST: the number stays out of the URL)."""
    found = 0
    samples: list[float] = []
    timer.phase = "warm-up"
    for number in id_numbers[:20]:
        client.post("/api/v1/persons/search", json={"purpose": PURPOSE, "id_number": number})
    timer.phase = "search"
    for number in id_numbers:
        start = time.perf_counter()
        response = client.post(
            "/api/v1/persons/search", json={"purpose": PURPOSE, "id_number": number}
        )
        samples.append((time.perf_counter() - start) * 1000)
        response.raise_for_status()
        found += response.json()["total"]
    return samples, found


def main() -> None:
    """Run both benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, required=True, help="SQLite file of the demo city")
    parser.add_argument("--rounds", type=int, default=10, help="rounds per mode (default 10)")
    parser.add_argument("--per-round", type=int, default=100, help="requests per round")
    parser.add_argument("--searches", type=int, default=2000, help="ID number searches")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--no-autocheckpoint",
        action="store_true",
        help="PRAGMA wal_autocheckpoint=0 on every connection: what moving SQLite's WAL "
        "checkpoints off the request path (to a background worker) would give",
    )
    args = parser.parse_args()
    if args.no_autocheckpoint:
        event.listen(Engine, "connect", _no_autocheckpoint)
    url = f"sqlite:///{args.db}"
    if not args.db.exists() or current_revision(url) is None:
        raise SystemExit(f"{args.db}: run `citygrid db upgrade --db {args.db}` first")
    id_numbers = _id_numbers(url, args.searches, args.seed)
    timer = RouteTimer()
    with Server(url) as base, httpx.Client(base_url=base, timeout=30) as client:
        lists = bench_list(client, timer, rounds=args.rounds, per_round=args.per_round)
        searches, found = bench_search(client, timer, id_numbers)
        # The stack's floor on this machine now: a route that does nothing.
        floor = [_timed(lambda: client.get("/healthz")) for _ in range(500)]
    audited, unaudited = lists["audited"], lists["unaudited"]
    print(_line("list, audited", audited))
    print(_line("list, audit switched off", unaudited))
    p50_overhead = statistics.median(audited) / statistics.median(unaudited) - 1
    p99_overhead = _percentile(audited, 0.99) / _percentile(unaudited, 0.99) - 1
    print(f"{'audit overhead':34s} p50 {p50_overhead:+.1%}   p99 {p99_overhead:+.1%}")
    cpu_audited, cpu_unaudited = lists["cpu audited"][0], lists["cpu unaudited"][0]
    print(
        f"{'CPU per list (server + client)':34s} audited {cpu_audited:.2f} ms, "
        f"unaudited {cpu_unaudited:.2f} ms ({cpu_audited / cpu_unaudited - 1:+.1%}); "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(_line("search by full ID number", searches))
    print(f"{'':34s} {found} of {len(id_numbers)} numbers found (the others lie outside the scope)")
    print(_line("(floor: GET /healthz)", floor))
    for phase in ("list, audited", "list, unaudited", "search"):
        print(_line(f"  in the route: {phase}", timer.samples[phase]))
    p99 = _percentile(audited, 0.99)
    print(
        f"targets: list p99 <= 30 ms: {'met' if p99 <= 30 else 'MISSED'}; "
        f"overhead <= 25%: {'met' if p50_overhead <= 0.25 else 'MISSED'}; "
        f"search p99 <= 5 ms: {'met' if _percentile(searches, 0.99) <= 5 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
