"""The live feed under load: a new case reaches 50 connected command-centre clients.

    .venv/bin/python -m benchmarks.bench_case_stream [--clients 50] [--cases 200]
        [--pause 0.02] [--backend sqlite|postgresql|both]

A real uvicorn server runs in a subprocess (``citygrid.kit.serve.Server``, on a socket bound
to 127.0.0.1 port 0 and handed over), over a fresh database holding the mini city: a SQLite
file, and a new PostgreSQL database at ``CITYGRID_BENCH_POSTGRES_URL`` (default: the local
server) when it is reachable. ``--clients`` async httpx clients hold
``GET /api/v1/cases/stream`` open with a dispatcher's bearer token; then cases are filed one
after the other through ``POST /api/v1/cases``. For every case and every client the latency
is the time from just before the POST was sent to the moment the client had the event, so it
includes the whole request (commit included). Every client must receive every case.

Target (issue "Cases"): p99 at most 1 s with 50 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

import httpx  # noqa: E402
from tests.cases.helpers import tile_report  # noqa: E402
from tests.cases.live import fresh_postgres_database, live_settings, prepare_database  # noqa: E402
from tests.fixtures_territory import MINI_GRID_CODES  # noqa: E402

POSTGRES_URL = os.environ.get(
    "CITYGRID_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
STREAM = "/api/v1/cases/stream"


def serve_child(url: str, fd: int) -> None:
    """The server process: the app on the inherited listening socket."""
    import uvicorn

    from citygrid.app import create_app
    from citygrid.kit.serve import Server

    listener = socket.socket(fileno=fd)
    app = create_app(live_settings(url))
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5
    )
    Server(config).run(sockets=[listener])


def start_server(url: str) -> tuple[subprocess.Popen[bytes], str]:
    """The server subprocess and its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    port = listener.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "benchmarks.bench_case_stream",
        "--serve",
        url,
        "--fd",
        str(listener.fileno()),
    ]
    process = subprocess.Popen(command, pass_fds=[listener.fileno()])  # noqa: S603
    listener.close()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError("the server did not start")
        time.sleep(0.05)


async def client(
    base_url: str,
    token: str,
    received: dict[str, list[float]],
    opened: asyncio.Event,
    counter: list[int],
    clients: int,
    stop: asyncio.Event,
) -> None:
    """One command-centre client: reads the stream, notes when each new case arrived."""
    headers = {"Authorization": f"Bearer {token}"}
    timeout = httpx.Timeout(10, read=None)
    async with (
        httpx.AsyncClient(timeout=timeout) as http,
        http.stream("GET", base_url + STREAM, headers=headers) as response,
    ):
        response.raise_for_status()
        announced = False
        ref: str | None = None
        async for line in response.aiter_lines():
            if not announced and line.startswith(":"):
                announced = True
                counter[0] += 1
                if counter[0] == clients:
                    opened.set()
            elif line.startswith("data:") and '"event":"case.created"' in line:
                start = line.find('"ref":"') + len('"ref":"')
                ref = line[start : line.find('"', start)]
                received[ref].append(time.perf_counter())
            if stop.is_set():
                return


async def run(base_url: str, token: str, clients: int, cases: int, pause: float) -> dict[str, Any]:
    """Connect the clients, file the cases, and gather the latencies."""
    received: dict[str, list[float]] = defaultdict(list)
    opened, stop = asyncio.Event(), asyncio.Event()
    counter = [0]
    readers = [
        asyncio.create_task(client(base_url, token, received, opened, counter, clients, stop))
        for _ in range(clients)
    ]
    waiting = asyncio.create_task(opened.wait())
    await asyncio.wait([waiting, *readers], timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if not opened.is_set():
        failed = [reader.exception() for reader in readers if reader.done()]
        raise RuntimeError(f"{counter[0]} of {clients} streams opened; failures: {failed[:3]}")
    sent: dict[str, float] = {}
    answered: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=headers) as http:
        for number in range(cases):
            body = tile_report(MINI_GRID_CODES[number % len(MINI_GRID_CODES)])
            before = time.perf_counter()
            response = await http.post("/api/v1/cases", json=body)
            after = time.perf_counter()
            response.raise_for_status()
            ref = response.json()["id"]
            sent[ref], answered[ref] = before, after
            await asyncio.sleep(pause)
        deadline = time.monotonic() + 10
        while any(len(received[ref]) < clients for ref in sent) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    stop.set()
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    latencies = [moment - sent[ref] for ref in sent for moment in received[ref]]
    after_answer = [moment - answered[ref] for ref in sent for moment in received[ref]]
    missing = sum(max(0, clients - len(received[ref])) for ref in sent)
    post_ms = [1000 * (answered[ref] - sent[ref]) for ref in sent]
    return {
        "latencies": latencies,
        "after_answer": after_answer,
        "missing": missing,
        "post_ms": post_ms,
    }


def quantile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of the values lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(backend: str, figures: dict[str, Any], clients: int, cases: int) -> None:
    """Print one backend's figures."""
    latencies = figures["latencies"]
    after = figures["after_answer"]
    print(f"{backend}: {clients} clients x {cases} cases = {len(latencies)} deliveries")
    print(f"  missing deliveries        {figures['missing']}")
    print(
        "  creation -> receipt (ms)  "
        f"p50 {1000 * statistics.median(latencies):.1f}  "
        f"p99 {1000 * quantile(latencies, 0.99):.1f}  max {1000 * max(latencies):.1f}"
    )
    print(
        "  commit answered -> receipt (ms)  "
        f"p50 {1000 * statistics.median(after):.1f}  p99 {1000 * quantile(after, 0.99):.1f}"
    )
    print(f"  POST /api/v1/cases (ms)   p50 {statistics.median(figures['post_ms']):.1f}")
    verdict = "meets" if quantile(latencies, 0.99) <= 1.0 and not figures["missing"] else "MISSES"
    print(f"  target p99 <= 1000 ms: {verdict}")


def bench(url: str, backend: str, clients: int, cases: int, pause: float) -> None:
    """Prepare the database, serve it, measure, report."""
    tokens = prepare_database(url)
    from citygrid.kit.db import dispose_engines

    dispose_engines()
    process, base_url = start_server(url)
    try:
        figures = asyncio.run(run(base_url, tokens["dispatcher"], clients, cases, pause))
    finally:
        process.terminate()
        process.wait(timeout=15)
    report(backend, figures, clients, cases)


def postgres_reachable() -> bool:
    """True when the benchmark's PostgreSQL answers."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return True
    except Exception:
        return False


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between two cases")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve_child(arguments.serve, arguments.fd)
        return
    with ExitStack() as stack:
        if arguments.backend in ("sqlite", "both"):
            directory = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            url = f"sqlite:///{directory / 'stream.sqlite3'}"
            bench(url, "SQLite", arguments.clients, arguments.cases, arguments.pause)
        if arguments.backend in ("postgresql", "both"):
            if postgres_reachable():
                url = stack.enter_context(fresh_postgres_database(POSTGRES_URL))
                bench(url, "PostgreSQL", arguments.clients, arguments.cases, arguments.pause)
            else:
                print("PostgreSQL: not reachable, skipped")


if __name__ == "__main__":
    main()
