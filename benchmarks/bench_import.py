"""Bulk import: rows per second of ``citygrid import`` (validation, bulk upsert, outbox entry
per row, publication record and checkpoint per batch) on a CSV of pensions for the residents
of a demo city, and the ratio to its limit: a raw ``sqlite3`` ``executemany`` of the same rows
into the same table (no validation, no outbox).

    .venv/bin/python -m benchmarks.bench_import [--residents 200000] [--batch-size 10000]
        [--runs 3] [--profile] [--postgres URL | --no-postgres]

The demo city is built into a temporary file (``citygrid build-demo``) and the CSV written
from its residents' ID numbers. Then, ``--runs`` times, a pair of imports into an emptied
table (every row created): with the reader process reading ahead (what a file of this size
gets) and in one process (``--no-read-ahead``), one right after the other so that the
machine's load moves both alike; then the file again with ``--restart`` (every row compared,
unchanged); then the raw ``executemany``. Target (issue 4): at least 30,000 rows/s with
validation, judged on the median of the read-ahead runs. CPU seconds are the importing
process's (its reader's apart); on a shared 2-core machine other processes stretch the wall
time.

Then the same on PostgreSQL (unless ``--no-postgres``): a database created beside the admin
URL's (``--postgres``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``),
the demo city built into it, ``--runs`` read-ahead imports into the emptied table, and the
raw limit there: psycopg's ``executemany`` of the same rows; the database is dropped at the
end.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import os
import pstats
import sqlite3
import subprocess
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text

from citygrid.demo.builder import build_demo_database, build_demo_file
from citygrid.exchange.importing import DEFAULT_BATCH, ImportRequest, run_import
from citygrid.exchange.schemas import PublishMode
from citygrid.kit import i18n
from citygrid.kit.db import dispose_engines, get_session_factory
from citygrid.kit.settings import sqlite_url


def _write_csv(database: Path, path: Path) -> int:
    with closing(sqlite3.connect(database)) as connection:
        numbers = [row[0] for row in connection.execute("SELECT id_number FROM persons")]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id_number", "amount", "status", "since"])
        for position, number in enumerate(numbers):
            writer.writerow([number, f"{1800 + position % 2000}.50", "active", "2021-07-01"])
    return len(numbers)


def _raw_executemany(database: Path, path: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) to insert the file's rows with one executemany, person ids looked
    up beforehand (not timed) — the limit of what any import into this table can do."""
    with closing(sqlite3.connect(database)) as connection:
        ids = dict(connection.execute("SELECT id_number, id FROM persons"))
        grids = dict(connection.execute("SELECT id, grid_code FROM persons"))
        with path.open(encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            rows = [
                (ids[number], grids[ids[number]], amount, status, since, "raw")
                for number, amount, status, since in reader
            ]
        connection.execute("DELETE FROM exchange_pensions")
        connection.commit()
        started, cpu = time.perf_counter(), time.process_time()
        connection.executemany(
            "INSERT INTO exchange_pensions (person_id, grid_code, amount, status, since, "
            "changed_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            rows,
        )
        connection.commit()
        return time.perf_counter() - started, time.process_time() - cpu


def _empty(database: Path) -> None:
    """The pensions table, its outbox entries and the import jobs, emptied (not timed)."""
    with closing(sqlite3.connect(database)) as connection:
        for table in ("exchange_pensions", "exchange_import_jobs", "exchange_publications"):
            connection.execute(f"DELETE FROM {table}")  # noqa: S608
        connection.execute("DELETE FROM outbox WHERE topic = 'dataset.pensions'")
        connection.commit()
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _show(label: str, rows: int, wall: float, cpu: float) -> None:
    print(
        f"{label + ':':<36} {rows:,} rows in {wall:.2f} s wall ({cpu:.2f} s CPU) = "
        f"{rows / wall:,.0f} rows/s ({rows / cpu:,.0f} rows per CPU second)"
    )


def _timed_import(url: str, request: ImportRequest, *, profile: bool) -> tuple[float, float, int]:
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    result = run_import(get_session_factory(url), request)
    if profiler:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    return time.perf_counter() - wall, time.process_time() - cpu, result.rows


def _postgres_csv(url: str, path: Path) -> int:
    engine = create_engine(url)
    with engine.connect() as connection:
        numbers = list(connection.scalars(text("SELECT id_number FROM persons")))
    engine.dispose()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id_number", "amount", "status", "since"])
        for position, number in enumerate(numbers):
            writer.writerow([number, f"{1800 + position % 2000}.50", "active", "2021-07-01"])
    return len(numbers)


def _postgres_empty(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        for table in ("exchange_pensions", "exchange_import_jobs", "exchange_publications"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
        connection.execute(text("DELETE FROM outbox WHERE topic = 'dataset.pensions'"))
    engine.dispose()
    with closing(psycopg.connect(url.replace("+psycopg", ""), autocommit=True)) as connection:
        connection.execute("VACUUM ANALYZE exchange_pensions")
        connection.execute("VACUUM ANALYZE outbox")


def _postgres_raw(url: str, path: Path) -> tuple[float, float]:
    """Seconds (wall, CPU) of psycopg's executemany of the file's rows (person ids looked up
    beforehand, not timed)."""
    _postgres_empty(url)
    with closing(psycopg.connect(url.replace("+psycopg", ""))) as connection:
        keys = {
            number: (person_id, grid_code)
            for number, person_id, grid_code in connection.execute(
                "SELECT id_number, id, grid_code FROM persons"
            )
        }
        with path.open(encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            rows = [
                (*keys[number], amount, status, since, "raw")
                for number, amount, status, since in reader
            ]
        started, cpu = time.perf_counter(), time.process_time()
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO exchange_pensions (person_id, grid_code, amount, status, since, "
                "changed_by, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, "
                "now(), now())",
                rows,
            )
        connection.commit()
        return time.perf_counter() - started, time.process_time() - cpu


def _bench_postgres(admin: str, args: argparse.Namespace, folder: Path) -> None:
    name = f"citygrid_bench_{uuid.uuid4().hex[:8]}"
    psql = admin.replace("+psycopg", "")
    try:
        subprocess.run(["psql", psql, "-qc", f'CREATE DATABASE "{name}"'], check=True)  # noqa: S603, S607
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"PostgreSQL: skipped ({type(exc).__name__})")
        return
    url = f"{admin.rsplit('/', 1)[0]}/{name}"
    try:
        print(f"PostgreSQL: building a demo city of {args.residents:,} residents ...")
        build_demo_database(url, residents=args.residents)
        source = folder / "pensions-postgres.csv"
        rows = _postgres_csv(url, source)
        request = ImportRequest(
            dataset="pensions",
            path=source,
            department="social-security",
            mode=PublishMode.VALID_ROWS,
            batch_size=args.batch_size,
            read_ahead=True,
        )
        walls: list[float] = []
        for run in range(args.runs):
            _postgres_empty(url)
            wall, cpu, imported = _timed_import(url, request, profile=False)
            _show(f"PostgreSQL run {run + 1}, read ahead, all created", imported, wall, cpu)
            walls.append(wall)
            dispose_engines()
        wall = sorted(walls)[len(walls) // 2]
        raw, raw_cpu = _postgres_raw(url, source)
        _show("PostgreSQL raw psycopg executemany", rows, raw, raw_cpu)
        print(f"PostgreSQL median of the runs: {rows / wall:,.0f} rows/s")
        print(f"PostgreSQL ratio import / raw executemany: {raw / wall:.2f}")
    finally:
        dispose_engines()
        subprocess.run(  # noqa: S603, S607
            ["psql", psql, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'], check=False
        )


def main() -> None:
    """Build, generate, import, compare; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    parser.add_argument("--runs", type=int, default=3, help="pairs of imports (median shown)")
    parser.add_argument("--profile", action="store_true", help="profile the first import")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "CITYGRID_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin URL: the PostgreSQL run's database is created and dropped beside it",
    )
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    i18n.set_locale("en")
    with tempfile.TemporaryDirectory(prefix="bench-import-") as directory:
        folder = Path(directory)
        database = folder / "city.sqlite3"
        print(f"building a demo city of {args.residents:,} residents ...")
        build_demo_file(database, residents=args.residents)
        url = sqlite_url(database)
        source = folder / "pensions.csv"
        rows = _write_csv(database, source)
        print(f"{rows:,} pension rows, {source.stat().st_size / 1e6:.1f} MB CSV")
        request = ImportRequest(
            dataset="pensions",
            path=source,
            department="social-security",
            mode=PublishMode.VALID_ROWS,
            batch_size=args.batch_size,
            read_ahead=True,
        )
        alone = ImportRequest(**{**request.__dict__, "read_ahead": False})
        ahead: list[float] = []
        for run in range(args.runs):
            # A pair, one right after the other: the machine's load moves both alike.
            _empty(database)
            wall, cpu, imported = _timed_import(url, request, profile=args.profile and not run)
            _show(f"run {run + 1}, read ahead, all created", imported, wall, cpu)
            ahead.append(wall)
            _empty(database)
            wall, cpu, imported = _timed_import(url, alone, profile=False)
            _show(f"run {run + 1}, one process, all created", imported, wall, cpu)
            print(f"  reading ahead is {wall / ahead[-1]:.2f}x as fast")
            dispose_engines()
        wall = sorted(ahead)[len(ahead) // 2]
        again = ImportRequest(**{**request.__dict__, "restart": True})
        wall2, cpu2, imported2 = _timed_import(url, again, profile=False)
        _show("read ahead, all unchanged", imported2, wall2, cpu2)
        dispose_engines()
        raw, raw_cpu = _raw_executemany(database, source)
        _show("raw sqlite3 executemany", rows, raw, raw_cpu)
        print(f"load average during the run: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
        print(f"ratio import / raw executemany: {raw / wall:.2f} (raw is {wall / raw:.1f}x faster)")
        print(f"median of the read-ahead runs: {rows / wall:,.0f} rows/s")
        target = "met" if rows / wall >= 30_000 else "NOT met"
        print(f"target 30,000 rows/s with validation: {target}")
        if not args.no_postgres:
            _bench_postgres(args.postgres, args, folder)


if __name__ == "__main__":
    main()
