"""Point-to-grid locator: import and build times, bulk and single lookups per second, and
p50/p99 of ``GET /api/v1/locate`` over a real uvicorn server.

    .venv/bin/python -m benchmarks.bench_locator [--points 1000000] [--requests 2000]

Builds a synthetic territory in a temporary SQLite file through the import service:
city 440100 > district 440104 > 20 streets > 10 communities each > 100 grids each
(20,000 squares of 0.001 x 0.0009 degrees, about 102 m x 100 m, around lon 113.3, lat 23.1).

Targets (issue "Foundation"): >= 500,000 lookups/s in bulk with 20,000 grids;
p99 <= 5 ms per HTTP locate call.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

from citygrid.kit.actor import SYSTEM  # noqa: E402
from citygrid.kit.db import dispose_engines, unit_of_work  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.settings import sqlite_url  # noqa: E402
from citygrid.territory.locator import Locator  # noqa: E402
from citygrid.territory.service import import_feature_collection  # noqa: E402

LON0, LAT0 = 113.25, 23.05
DLON, DLAT = 0.001, 0.0009
STREETS, COMMUNITIES, GRIDS_SIDE = 20, 10, 10  # 20 x 10 x (10 x 10) = 20,000 grids


def _box(column0: int, row0: int, column1: int, row1: int) -> dict[str, Any]:
    # Corners come from integer lattice indices, so shared edges are bit-identical.
    x0, x1 = round(LON0 + column0 * DLON, 7), round(LON0 + column1 * DLON, 7)
    y0, y1 = round(LAT0 + row0 * DLAT, 7), round(LAT0 + row1 * DLAT, 7)
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    return {"type": "Polygon", "coordinates": [ring]}


def _feature(code: str, level: str, geometry: dict[str, Any]) -> dict[str, Any]:
    properties = {"code": code, "level": level, "name_zh": f"单元{code}", "name_en": f"Unit {code}"}
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def synthetic_territory() -> tuple[dict[str, Any], tuple[float, float, float, float]]:
    """The collection and its extent: street s is row band s, community c column band c."""
    columns, rows = COMMUNITIES * GRIDS_SIDE, STREETS * GRIDS_SIDE
    features = [
        _feature("440100", "city", _box(-1, -1, columns + 1, rows + 1)),
        _feature("440104", "district", _box(0, 0, columns, rows)),
    ]
    for street in range(STREETS):
        street_code = f"440104{street + 1:03d}"
        row0 = street * GRIDS_SIDE
        features.append(_feature(street_code, "street", _box(0, row0, columns, row0 + GRIDS_SIDE)))
        for community in range(COMMUNITIES):
            community_code = f"{street_code}{community + 1:03d}"
            column0 = community * GRIDS_SIDE
            features.append(
                _feature(
                    community_code,
                    "community",
                    _box(column0, row0, column0 + GRIDS_SIDE, row0 + GRIDS_SIDE),
                )
            )
            for number in range(GRIDS_SIDE * GRIDS_SIDE):
                row, column = divmod(number, GRIDS_SIDE)
                features.append(
                    _feature(
                        f"{community_code}{number + 1:03d}",
                        "grid",
                        _box(column0 + column, row0 + row, column0 + column + 1, row0 + row + 1),
                    )
                )
    extent = (LON0, LAT0, LON0 + columns * DLON, LAT0 + rows * DLAT)
    return {"type": "FeatureCollection", "features": features}, extent


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def bench_http(url: str, points: np.ndarray, requests: int) -> tuple[list[float], list[float]]:
    """Latencies (ms) of sequential locate calls through a uvicorn server in a subprocess,
    and of as many /healthz calls (the framework's floor on the same machine)."""
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
    server = subprocess.Popen(command, env=env)
    latencies: list[float] = []
    baseline: list[float] = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not answer /healthz within 30 s")
                time.sleep(0.05)
            started = time.perf_counter()
            client.get("/api/v1/locate", params={"lon": points[0, 0], "lat": points[0, 1]})
            first_ms = 1000 * (time.perf_counter() - started)
            print(f"  first call (builds the locator)  {first_ms:8.1f} ms")
            for warmup in range(50):
                client.get(
                    "/api/v1/locate", params={"lon": points[warmup, 0], "lat": points[warmup, 1]}
                )
            for lon, lat in points[:requests]:
                started = time.perf_counter()
                response = client.get("/api/v1/locate", params={"lon": lon, "lat": lat})
                latencies.append(1000 * (time.perf_counter() - started))
                if response.status_code != 200:
                    raise RuntimeError(f"locate answered {response.status_code}: {response.text}")
            for _request in range(requests):
                started = time.perf_counter()
                client.get("/healthz")
                baseline.append(1000 * (time.perf_counter() - started))
    finally:
        server.terminate()
        server.wait(timeout=10)
    return latencies, baseline


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--singles", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2_000)
    args = parser.parse_args()
    rng = np.random.default_rng(20261127)

    with tempfile.TemporaryDirectory(prefix="citygrid-bench-") as directory:
        url = sqlite_url(Path(directory) / "territory.sqlite3")
        upgrade(url)
        collection, (min_lon, min_lat, max_lon, max_lat) = synthetic_territory()
        grids = sum(1 for item in collection["features"] if item["properties"]["level"] == "grid")
        print(f"synthetic territory: {len(collection['features']):,} units, {grids:,} grids")

        started = time.perf_counter()
        with unit_of_work(url) as session:
            report = import_feature_collection(session, SYSTEM, collection=collection)
        print(
            f"  import (validate + insert)       {time.perf_counter() - started:8.2f} s"
            f"  ({report.created:,} created)"
        )
        started = time.perf_counter()
        with unit_of_work(url) as session:
            report = import_feature_collection(session, SYSTEM, collection=collection)
        print(
            f"  re-import, nothing changed       {time.perf_counter() - started:8.2f} s"
            f"  ({report.unchanged:,} unchanged)"
        )

        for item in collection["features"]:
            item["properties"]["name_en"] += " (renamed)"
        started = time.perf_counter()
        with unit_of_work(url) as session:
            report = import_feature_collection(session, SYSTEM, collection=collection)
        print(
            f"  re-import, every unit renamed    {time.perf_counter() - started:8.2f} s"
            f"  ({report.updated:,} updated)"
        )

        started = time.perf_counter()
        with unit_of_work(url) as session:
            locator = Locator.from_session(session)
        print(f"  locator build from the database  {time.perf_counter() - started:8.2f} s")

        # (a) bulk: uniform over the extent plus a 2% margin (some points fall outside).
        margin_lon, margin_lat = 0.02 * (max_lon - min_lon), 0.02 * (max_lat - min_lat)
        lons = rng.uniform(min_lon - margin_lon, max_lon + margin_lon, args.points)
        lats = rng.uniform(min_lat - margin_lat, max_lat + margin_lat, args.points)
        locator.locate_many(lons[:1000], lats[:1000])
        started = time.perf_counter()
        codes = locator.locate_many(lons, lats)
        elapsed = time.perf_counter() - started
        found = sum(code is not None for code in codes)
        print(
            f"(a) locate_many: {args.points:,} points in {elapsed:.3f} s = "
            f"{args.points / elapsed:,.0f} points/s ({found / args.points:.1%} inside a grid)"
        )

        # (b) one call per point.
        singles = min(args.singles, args.points)
        started = time.perf_counter()
        for lon, lat in zip(lons[:singles].tolist(), lats[:singles].tolist(), strict=True):
            locator.locate(lon, lat)
        elapsed = time.perf_counter() - started
        print(
            f"(b) locate: {singles:,} calls in {elapsed:.3f} s = {singles / elapsed:,.0f} calls/s"
        )

        # (c) HTTP, points inside the grids so every answer is a 200.
        inside = np.column_stack(
            (
                rng.uniform(min_lon, max_lon, args.requests + 51),
                rng.uniform(min_lat, max_lat, args.requests + 51),
            )
        )
        latencies, baseline = bench_http(url, inside, args.requests)
        for label, values in (
            ("GET /api/v1/locate", latencies),
            ("GET /healthz (floor)", baseline),
        ):
            cuts = statistics.quantiles(values, n=100)
            print(
                f"(c) {label} x {len(values):,} (sequential, keep-alive): "
                f"p50 {cuts[49]:.2f} ms, p99 {cuts[98]:.2f} ms, max {max(values):.2f} ms"
            )
        dispose_engines()


if __name__ == "__main__":
    main()
