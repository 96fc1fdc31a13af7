"""Grid summary: p50/p99 of ``GET /api/v1/grids/{code}/summary`` over a real uvicorn server,
and of ``registry.service.grid_summary`` without HTTP.

    .venv/bin/python -m benchmarks.bench_summary --db var/demo.sqlite3 \
        [--grid 440104001001002] [--n 2000]

``--db`` is an existing, migrated database (the demo city: ``citygrid build-demo --db PATH
--residents 1000000``), or ``--url`` a database URL (PostgreSQL). Without one,
``--fill 1000000`` first builds a stand-in (a new SQLite file, or an empty PostgreSQL database):
1,000 grids under district 440104 with 1,000 residents each (1% deceased), 10 buildings of
40 flats, about 370 households and 30 components per grid, written with executemany.

Target (issue "Foundation"): p99 <= 20 ms on a 1,000,000-resident database.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

import httpx  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from citygrid.kit.db import make_engine  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.settings import sqlite_url  # noqa: E402
from citygrid.registry import service  # noqa: E402
from citygrid.registry.catalogue import load_component_classes, sync_component_classes  # noqa: E402
from citygrid.registry.idnumber import make_id_numbers  # noqa: E402
from citygrid.registry.models import (  # noqa: E402
    Building,
    Component,
    Household,
    HousingUnit,
    Person,
)
from citygrid.territory.models import TerritorialUnit  # noqa: E402

DISTRICT = "440104"
STREETS = COMMUNITIES = GRIDS = 10  # per parent: 10 x 10 x 10 = 1,000 grids
BUILDINGS_PER_GRID = 10
UNITS_PER_BUILDING = 40
COMPONENTS_PER_GRID = 30
PEOPLE_PER_HOUSEHOLD = 2.7
BATCH = 20_000
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


# --------------------------------------------------------------------------- stand-in database


def _square(lon: float, lat: float, size: float) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def _territory_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def unit(
        code: str, level: str, parent: str | None, lon: float, lat: float, size: float
    ) -> None:
        rows.append(
            {
                "code": code,
                "level": level,
                "parent_code": parent,
                "name_zh": f"单元{code}",
                "name_en": f"Unit {code}",
                "geometry": json.dumps(_square(lon, lat, size)),
                "area_m2": (size * 100_000) ** 2,
                "centroid_lon": lon + size / 2,
                "centroid_lat": lat + size / 2,
                "min_lon": lon,
                "min_lat": lat,
                "max_lon": lon + size,
                "max_lat": lat + size,
            }
        )

    base_lon, base_lat, grid_size = 113.20, 23.10, 0.001
    unit("440100", "city", None, base_lon, base_lat, 1.0)
    unit(DISTRICT, "district", "440100", base_lon, base_lat, 0.1)
    for s in range(1, STREETS + 1):
        street = f"{DISTRICT}{s:03d}"
        unit(street, "street", DISTRICT, base_lon + s * 0.01, base_lat, 0.01)
        for c in range(1, COMMUNITIES + 1):
            community = f"{street}{c:03d}"
            unit(community, "community", street, base_lon + s * 0.01, base_lat + c * 0.001, 0.001)
            for g in range(1, GRIDS + 1):
                lon = base_lon + s * 0.01 + g * grid_size / 10
                unit(f"{community}{g:03d}", "grid", community, lon, base_lat + c * 0.001, 0.0001)
    return rows


def _batched(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def fill(url: str, residents: int) -> None:
    """Build a stand-in database of ``residents`` persons (a new SQLite file, or an empty
    PostgreSQL database)."""
    upgrade(url)
    engine = make_engine(url)
    started = time.perf_counter()
    rng = random.Random(20_261_127)
    territory = _territory_rows()
    grids = [row["code"] for row in territory if row["level"] == "grid"]
    per_grid = max(1, residents // len(grids))
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.execute(insert(TerritorialUnit), territory)
        sync_component_classes(session)
        class_codes = [item.code for item in load_component_classes()]
        building_id = unit_id = household_id = person_id = 0
        buildings: list[dict[str, Any]] = []
        units: list[dict[str, Any]] = []
        households: list[dict[str, Any]] = []
        components: list[dict[str, Any]] = []
        for grid in grids:
            for _ in range(BUILDINGS_PER_GRID):
                building_id += 1
                buildings.append(
                    {
                        "id": building_id,
                        "grid_code": grid,
                        "address": f"街道 {building_id} 号",
                        "lon": 113.27,
                        "lat": 23.13,
                        "floors": 10,
                        "qr_token": service.new_qr_token(),
                    }
                )
                for index in range(UNITS_PER_BUILDING):
                    unit_id += 1
                    units.append(
                        {
                            "id": unit_id,
                            "building_id": building_id,
                            "grid_code": grid,
                            "floor": index // 4 + 1,
                            "number": f"{index // 4 + 1}{index % 4 + 1:02d}",
                            "use": "rental" if index % 3 else "owner_occupied",
                        }
                    )
            for _ in range(round(per_grid / PEOPLE_PER_HOUSEHOLD)):
                household_id += 1
                households.append(
                    {"id": household_id, "grid_code": grid, "registration_type": "family"}
                )
            for serial in range(COMPONENTS_PER_GRID):
                class_code = class_codes[serial % len(class_codes)]
                components.append(
                    {
                        "class_code": class_code,
                        "grid_code": grid,
                        "identifier": f"{grid}{class_code}{serial:06d}",
                        "lon": 113.27,
                        "lat": 23.13,
                        "condition": "good",
                        "owner_department": "urban-management",
                    }
                )
        for model, rows in (
            (Building, buildings),
            (HousingUnit, units),
            (Household, households),
            (Component, components),
        ):
            for batch in _batched(iter(rows)):
                session.execute(insert(model), batch)

        households_per_grid = round(per_grid / PEOPLE_PER_HOUSEHOLD)

        def people() -> Iterator[dict[str, Any]]:
            nonlocal person_id
            first_birth = date(1940, 1, 1)
            for grid_index, grid in enumerate(grids):
                offsets = range(grid_index * per_grid, (grid_index + 1) * per_grid)
                births = [first_birth + timedelta(days=n // 1000) for n in offsets]
                sequences = [n % 1000 for n in offsets]
                numbers = make_id_numbers(DISTRICT, births, sequences)
                first_household = grid_index * households_per_grid + 1
                for number, birth, sequence in zip(numbers, births, sequences, strict=True):
                    person_id += 1
                    deceased = rng.random() < 0.01
                    yield {
                        "id": person_id,
                        "ref": service.new_person_ref(),
                        "grid_code": grid,
                        "household_id": first_household + rng.randrange(households_per_grid),
                        "id_number": number,
                        "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
                        "sex": "M" if sequence % 2 else "F",
                        "birth_date": birth,
                        "ethnicity": "01",
                        "mobile": f"13{rng.randrange(10**9):09d}",
                        "status": "deceased" if deceased else "alive",
                        "died_on": date(2020, 1, 1) if deceased else None,
                        "population_type": "registered",
                        "created_at": now,
                        "updated_at": now,
                    }

        for batch in _batched(people()):
            session.execute(insert(Person), batch)
        session.commit()
    # The planner needs statistics of the fresh tables (committed: on PostgreSQL, ANALYZE
    # inside a transaction that rolls back leaves none).
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    engine.dispose()
    print(
        f"filled the stand-in: {person_id:,} persons in {len(grids):,} grids "
        f"in {time.perf_counter() - started:.1f} s"
    )


# --------------------------------------------------------------------------- measuring


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _percentiles(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {statistics.median(ordered):6.2f} ms   p99 {p99:6.2f} ms   "
        f"max {ordered[-1]:6.2f} ms   (n={len(ordered)})"
    )


def _time(call: Callable[[], object], n: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def bench_service(url: str, grid: str, n: int, warmup: int) -> None:
    """Time the service functions without HTTP."""
    engine = make_engine(url)
    with Session(engine) as session:
        persons = session.execute(select(func.count()).select_from(Person)).scalar_one()
        print(f"database: {persons:,} persons")
        summary = service.grid_summary(session, grid_code=grid)
        print(
            f"grid {grid}: {summary.buildings} buildings, {summary.housing_units} units, "
            f"{summary.households} households, {summary.residents} residents, "
            f"{sum(summary.components.values())} components"
        )
        samples = _time(lambda: service.grid_summary(session, grid_code=grid), n, warmup)
        print(f"service grid_summary         {_percentiles(samples)}")
        street = grid[:9]
        samples = _time(lambda: service.counts_by_grid(session, code_prefix=street), 50, 3)
        print(f"service counts_by_grid {street}  {_percentiles(samples)}")
        district = grid[:6]
        samples = _time(lambda: service.counts_by_grid(session, code_prefix=district), 10, 1)
        print(f"service counts_by_grid {district}     {_percentiles(samples)}")
    engine.dispose()


def bench_http(url: str, grid: str, n: int, warmup: int) -> None:
    """Time the summary route through a uvicorn server on a free local port."""
    port = _free_port()
    env = {**os.environ, "CITYGRID_DATABASE_URL": url, "CITYGRID_DEMO_MODE": "true"}
    command = [
        sys.executable, "-m", "uvicorn", "--factory", "citygrid.app:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not come up")
                time.sleep(0.1)
            path = f"/api/v1/grids/{grid}/summary"
            response = client.get(path)
            response.raise_for_status()
            print(f"GET {path} -> {response.status_code}, {len(response.content)} bytes")

            def call() -> None:
                client.get(path).raise_for_status()

            samples = _time(call, n, warmup)
            print(f"HTTP  GET summary            {_percentiles(samples)}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    """Parse arguments, optionally build the stand-in, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, help="SQLite database file")
    parser.add_argument("--url", help="a database URL instead of --db (e.g. PostgreSQL)")
    parser.add_argument("--grid", default="440104001001002")
    parser.add_argument("--n", type=int, default=2000, help="requests to time")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--fill", type=int, metavar="RESIDENTS", help="build a stand-in first")
    args = parser.parse_args()
    if (args.db is None) == (args.url is None):
        parser.error("give --db PATH or --url URL")
    url = args.url or sqlite_url(args.db)
    if args.fill:
        if args.db is not None and args.db.exists():
            parser.error(f"{args.db} exists; --fill builds a new database")
        fill(url, args.fill)
    bench_service(url, args.grid, args.n, args.warmup)
    bench_http(url, args.grid, args.n, args.warmup)


if __name__ == "__main__":
    main()
