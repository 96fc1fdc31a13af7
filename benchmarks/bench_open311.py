"""Open311 GeoReport v2 through a real uvicorn server on SQLite: filing requests
(``POST /open311/v2/requests.json``, form-encoded, demo api_key), the request list
(``GET requests.json``: the spec's default of the last 90 days, 1,000 requests, in JSON and
XML) over a table of many cases, one request by id, and the service list.

    .venv/bin/python -m benchmarks.bench_open311 [--posts 2000] [--cases 200000] [--gets 200]

No target in the issue; the aims here: filing as fast as the JSON API's intake (>= 300/s),
a full page of 1,000 requests in well under a second.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

import httpx  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from tests.fixtures_territory import MINI_GRID_CODES, point_in_grid  # noqa: E402

from benchmarks.bench_cases import _wait_for, cpu_seconds, free_port, prepare  # noqa: E402
from citygrid.cases.models import Case  # noqa: E402
from citygrid.kit.db import dispose_engines, unit_of_work  # noqa: E402
from citygrid.kit.settings import sqlite_url  # noqa: E402

SERVICES = ("C0201", "C0105", "E0101", "E0403", "E0401")
STATES = ("reported", "registered", "dispatched", "handling", "handled", "closed", "rejected")


def form(rng: random.Random) -> dict[str, str]:
    """A plausible Open311 report somewhere in the mini city."""
    lon, lat = point_in_grid(rng.choice(MINI_GRID_CODES))
    return {
        "api_key": "citygrid-demo",
        "service_code": rng.choice(SERVICES),
        "lat": f"{lat + rng.uniform(-0.0003, 0.0003):.7f}",
        "long": f"{lon + rng.uniform(-0.0003, 0.0003):.7f}",
        "description": "Benchmark: broken pavement tiles in front of the shop",
        "attribute[priority]": rng.choice(("urgent", "high", "normal")),
        "email": "resident@example.com",
        "phone": "13800138000",
        "media_url": "https://photos.example.org/bench.jpg",
    }


def fill(url: str, count: int) -> None:
    """``count`` cases reported over the last 120 days (Core executemany)."""
    rng = random.Random(3)
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    for number in range(count):
        grid = rng.choice(MINI_GRID_CODES)
        lon, lat = point_in_grid(grid)
        moment = now - timedelta(seconds=rng.uniform(0, 120 * 86400))
        rows.append(
            {
                "ref": f"bench{number:011d}",
                "category": rng.choice(SERVICES),
                "kind": "component",
                "priority": "normal",
                "state": rng.choice(STATES),
                "description": "Benchmark case",
                "lon": lon,
                "lat": lat,
                "grid_code": grid,
                "community_code": grid[:12],
                "street_code": grid[:9],
                "district_code": grid[:6],
                "address": None,
                "source": "grid_worker",
                "reporter_name": "bench",
                "department": "housing-construction",
                "reported_at": moment,
                "rework_count": 0,
                "me_too_count": 0,
                "created_at": moment,
                "updated_at": moment,
            }
        )
    with unit_of_work(url) as session:
        for start in range(0, count, 10_000):
            session.execute(insert(Case), rows[start : start + 10_000])


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(client: httpx.Client, method: str, path: str, times: int, **kwargs: Any) -> list[float]:
    """Latencies (ms) of ``times`` calls; every answer must be 200."""
    latencies = []
    for _ in range(times):
        started = time.perf_counter()
        response = client.request(method, path, **kwargs)
        latencies.append(1000 * (time.perf_counter() - started))
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:200]}")
    return latencies


def line(label: str, latencies: list[float], extra: str = "") -> None:
    print(
        f"  {label:<44} p50 {statistics.median(latencies):7.2f} ms  "
        f"p99 {_percentile(latencies, 0.99):7.2f} ms  {extra}"
    )


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--cases", type=int, default=200_000)
    parser.add_argument("--gets", type=int, default=200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="citygrid-bench-") as directory:
        url = sqlite_url(Path(directory) / "open311.sqlite3")
        prepare(url)
        started = time.perf_counter()
        fill(url, args.cases)
        print("Open311 GeoReport v2, SQLite (WAL), uvicorn (1 worker)")
        print(f"  machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        loaded = time.perf_counter() - started
        print(f"  {args.cases:,} cases over 120 days loaded in {loaded:.1f} s")
        dispose_engines()

        port = free_port()
        env = {**os.environ, "CITYGRID_DATABASE_URL": url, "CITYGRID_DEMO_MODE": "true"}
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "citygrid.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        server = subprocess.Popen(command, env=env)  # noqa: S603 - our own interpreter
        rng = random.Random(4)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                _wait_for(client)
                for _ in range(50):  # warm-up
                    client.post("/open311/v2/requests.json", data=form(rng))
                posts: list[float] = []
                cpu_before = cpu_seconds(server.pid)
                started = time.perf_counter()
                for _ in range(args.posts):
                    posts.extend(
                        timed(client, "POST", "/open311/v2/requests.json", 1, data=form(rng))
                    )
                rate = args.posts / (time.perf_counter() - started)
                cpu_ms = 1000 * (cpu_seconds(server.pid) - cpu_before) / args.posts
                line("POST requests.json (1 client)", posts, f"{rate:6.0f} requests/s")
                print(
                    f"  server CPU per filed request {cpu_ms:6.2f} ms "
                    f"(one server core: {1000 / cpu_ms:.0f} requests/s)"
                )

                listing = client.get("/open311/v2/requests.json").json()
                line(
                    f"GET requests.json (default: {len(listing)} requests)",
                    timed(client, "GET", "/open311/v2/requests.json", args.gets),
                )
                line(
                    "GET requests.xml (default window)",
                    timed(client, "GET", "/open311/v2/requests.xml", args.gets),
                )
                line(
                    "GET requests.json?status=closed&service_code=..",
                    timed(
                        client,
                        "GET",
                        "/open311/v2/requests.json",
                        args.gets,
                        params={"status": "closed", "service_code": "E0403"},
                    ),
                )
                ref = listing[0]["service_request_id"]
                line(
                    "GET requests/{id}.json",
                    timed(client, "GET", f"/open311/v2/requests/{ref}.json", args.gets * 5),
                )
                line(
                    "GET services.json",
                    timed(client, "GET", "/open311/v2/services.json", args.gets * 5),
                )
        finally:
            server.terminate()
            server.wait(timeout=10)


if __name__ == "__main__":
    main()
