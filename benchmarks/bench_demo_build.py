"""Demo build: total time, residents per second, the time of each phase, and the person-insert
rate compared with its limit, a raw ``sqlite3`` ``executemany`` of the same rows into a
fresh copy of the same table with the same indexes.

    .venv/bin/python -m benchmarks.bench_demo_build [--residents 1000000] [--seed 20261127]

The limit is measured twice: with the same bulk pragmas as the build (the fair comparison,
whose ratio is reported) and with SQLite's defaults (for information). CPU seconds are shown
beside wall seconds: on a shared 2-core machine, other processes stretch the wall time.

Targets (issue "Foundation"): 1,000,000 residents in at most 120 s on SQLite; a person-insert
rate at least 0.5 of the raw executemany.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from citygrid.demo.builder import BuildProgress, build_demo_file
from citygrid.demo.population import COLUMNS
from citygrid.demo.repository import sqlite_bulk_pragmas
from citygrid.demo.seed import DEFAULT_SEED


class _CpuClock:
    """Records the process CPU time of each phase (the builder's clock gives wall time)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self._name: str | None = None
        self._started = 0.0

    def phase(self, name: str, total: int | None = None) -> None:
        now = time.process_time()
        if self._name is not None:
            self.cpu[self._name] = now - self._started
        self._name, self._started = name, now

    def advance(self, rows: int) -> None:
        pass

    def stop(self) -> None:
        self.phase("(end)")


def _persons_schema(path: Path) -> list[str]:
    """The CREATE statements of the persons table and its indexes, as stored."""
    with closing(sqlite3.connect(path)) as connection:
        return [
            sql
            for (sql,) in connection.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name = 'persons' AND sql IS NOT NULL "
                "ORDER BY type DESC"  # the table before its indexes
            )
        ]


def _persons_rows(path: Path) -> list[tuple[Any, ...]]:
    columns = ", ".join(COLUMNS["persons"])
    with closing(sqlite3.connect(path)) as connection:
        return connection.execute(f"SELECT {columns} FROM persons ORDER BY id").fetchall()  # noqa: S608


def _raw_insert(
    folder: Path, schema: list[str], rows: list[tuple[Any, ...]], *, bulk_pragmas: bool
) -> tuple[float, float]:
    """Wall and CPU seconds of one executemany of ``rows`` into a fresh persons table."""
    path = folder / f"raw-{'bulk' if bulk_pragmas else 'default'}.sqlite3"
    columns = COLUMNS["persons"]
    sql = f"INSERT INTO persons ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"  # noqa: S608
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        if bulk_pragmas:
            sqlite_bulk_pragmas(connection)
        for statement in schema:
            connection.execute(statement)
        wall, cpu = time.perf_counter(), time.process_time()
        connection.execute("BEGIN")
        connection.executemany(sql, rows)
        connection.execute("COMMIT")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        count = connection.execute("SELECT count(*) FROM persons").fetchone()[0]
    assert count == len(rows)
    path.unlink()
    return wall, cpu


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="citygrid-bench-demo-") as folder_name:
        folder = Path(folder_name)
        path = folder / "demo.sqlite3"
        clock = _CpuClock()
        started = time.perf_counter()
        progress: BuildProgress = clock
        report = build_demo_file(path, residents=args.residents, seed=args.seed, progress=progress)
        clock.stop()
        total = time.perf_counter() - started
        size_mb = path.stat().st_size / 1e6

        print(f"demo build: {args.residents:,} residents, seed {args.seed}, SQLite")
        print(f"  total            {total:8.2f} s   ({args.residents / total:,.0f} residents/s)")
        print(f"  database file    {size_mb:8.1f} MB")
        print("  phase                     wall s    cpu s")
        for name, seconds in report.phases.items():
            print(f"    {name:22} {seconds:8.2f} {clock.cpu.get(name, 0.0):8.2f}")
        print("  rows: " + ", ".join(f"{table} {n:,}" for table, n in report.counts.items()))

        schema = _persons_schema(path)
        rows = _persons_rows(path)
        built_wall = report.person_insert_seconds
        built_cpu = clock.cpu.get("insert persons", 0.0)
        raw_wall, raw_cpu = _raw_insert(folder, schema, rows, bulk_pragmas=True)
        default_wall, default_cpu = _raw_insert(folder, schema, rows, bulk_pragmas=False)

        def rate(seconds: float) -> str:
            return f"{len(rows) / seconds:>10,.0f} rows/s" if seconds else "n/a"

        print("  person insert                       wall                      cpu")
        print(f"    demo build         {built_wall:7.2f} s {rate(built_wall)}   "
              f"{built_cpu:7.2f} s {rate(built_cpu)}")  # fmt: skip
        print(f"    raw, bulk pragmas  {raw_wall:7.2f} s {rate(raw_wall)}   "
              f"{raw_cpu:7.2f} s {rate(raw_cpu)}")  # fmt: skip
        print(f"    raw, defaults      {default_wall:7.2f} s {rate(default_wall)}   "
              f"{default_cpu:7.2f} s {rate(default_cpu)}")  # fmt: skip
        print(
            f"  ratio build / raw executemany (same pragmas): wall {raw_wall / built_wall:.2f}, "
            f"cpu {raw_cpu / built_cpu:.2f}   (target >= 0.5)"
        )
        verdict = "meets" if total <= 120 else "MISSES"
        print(f"  {verdict} the 120 s target for this size")


if __name__ == "__main__":
    main()
