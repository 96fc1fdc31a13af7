"""The sequencer's tick on a large log: what the background worker pays every second.

    .venv/bin/python -m benchmarks.bench_audit_tick [--entries 1000000] [--db URL]

Fills the log (once; an existing database is reused) with entries spread over the last day,
then times ticks of ``service.checkpoint``: idle (nothing new) and with 100 new entries, each
with the recent-only search the worker uses and with the full search (what every tick cost
before).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from benchmarks.bench_audit import record  # noqa: E402
from citygrid.audit import service as audit  # noqa: E402
from citygrid.audit.signing import SigningKey  # noqa: E402
from citygrid.kit.db import get_session_factory  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.models import utcnow  # noqa: E402

KEY = SigningKey(Ed25519PrivateKey.generate())
RUNS = 7


def fill(factory: sessionmaker[Session], entries: int) -> None:
    """Entries spread over the last day, as a city's requests would have written them."""
    with factory.begin() as session:
        have = audit.tree_size(session)
    done = have
    day_start = utcnow() - timedelta(days=1)
    while done < entries:
        count = min(10_000, entries - done)
        rows = [
            audit._row_values(record(n), day_start + timedelta(days=n / entries))
            for n in range(done, done + count)
        ]
        with factory.begin() as session:
            audit.repo.insert_entries(session, rows)
        done += count
    if have < entries:
        start = time.perf_counter()
        with factory.begin() as session:
            audit.checkpoint(session, KEY, origin="bench/tick")
        elapsed = time.perf_counter() - start
        print(f"filled to {entries:,} entries; first checkpoint {elapsed:.1f} s")


def median_ms(factory: sessionmaker[Session], before: Callable[[], None], recent: bool) -> float:
    times = []
    for _ in range(RUNS):
        before()
        start = time.perf_counter()
        with factory.begin() as session:
            audit.checkpoint(session, KEY, origin="bench/tick", recent_only=recent)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--db", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'tick.sqlite3'}"
    upgrade(url)
    factory = get_session_factory(url)
    fill(factory, args.entries)
    # Table statistics, as PostgreSQL's autovacuum keeps them (without any, its planner
    # hash-joins the whole log for a tick's few rows).
    with factory.begin() as session:
        session.execute(text("ANALYZE"))
    counter = iter(range(10**9))

    def hundred_new() -> None:
        with factory.begin() as session:
            audit.append_many(session, [record(next(counter)) for _ in range(100)])

    def nothing() -> None:
        return None

    print(f"{url.split(':', 1)[0]}, {args.entries:,} entries, median of {RUNS} ticks:")
    for label, before in (("idle", nothing), ("100 new entries", hundred_new)):
        recent = median_ms(factory, before, recent=True)
        full = median_ms(factory, before, recent=False)
        print(f"  {label:<16} recent-only {recent:8.1f} ms   full search {full:8.1f} ms")


if __name__ == "__main__":
    main()
