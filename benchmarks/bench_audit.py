"""Access log: append rate, sequencing + checkpoint, and `verify` over many entries.

    .venv/bin/python -m benchmarks.bench_audit [--entries 1000000] [--postgres URL]

Targets (issue: access gateway): append >= 20,000 entries/s; verify of 1,000,000 entries <= 60 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from sqlalchemy import text  # noqa: E402

from citygrid.audit import service as audit  # noqa: E402
from citygrid.audit.signing import SigningKey  # noqa: E402
from citygrid.kit.db import dispose_engines, get_session_factory, make_engine  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.settings import normalise_database_url  # noqa: E402


def record(n: int) -> audit.AccessRecord:
    return audit.AccessRecord(
        actor=f"officer{n % 50}",
        role="grid_worker",
        action="list_persons",
        outcome=audit.ALLOWED,
        scope=("440104001001002",),
        purpose="patrol-update",
        subjects=(f"p{n:010d}",),
        fields=("identity",),
        request_id=f"{n:032x}",
        client_address="127.0.0.1",
    )


def run(url: str, entries: int) -> None:
    upgrade(url)
    factory = get_session_factory(url)
    key = SigningKey(Ed25519PrivateKey.generate())

    # One entry per transaction, as a request appends it.
    single = 2_000
    start = time.perf_counter()
    for n in range(single):
        with factory.begin() as session:
            audit.append(session, record(n))
    elapsed = time.perf_counter() - start
    print(f"append, one entry per transaction: {single / elapsed:,.0f} entries/s")

    # Bulk: entries in transactions of 1,000 (a list of 1,000 residents is one entry, so this
    # is the log's raw capacity).
    start = time.perf_counter()
    batch = 1_000
    done = single
    while done < entries:
        count = min(batch, entries - done)
        with factory.begin() as session:
            audit.append_many(session, [record(done + i) for i in range(count)])
        done += count
    elapsed = time.perf_counter() - start
    print(f"append, 1,000 per transaction: {(entries - single) / elapsed:,.0f} entries/s")

    start = time.perf_counter()
    with factory.begin() as session:
        checkpoint = audit.checkpoint(session, key, origin="bench/audit")
    elapsed = time.perf_counter() - start
    assert checkpoint is not None
    print(f"sequence + sign {checkpoint.tree_size:,} entries: {elapsed:.1f} s")

    start = time.perf_counter()
    with factory.begin() as session:
        report = audit.verify(session, public_keys=[key.public_bytes])
    elapsed = time.perf_counter() - start
    assert report.ok, report.problem
    print(f"verify {report.entries_checked:,} entries: {elapsed:.1f} s")

    start = time.perf_counter()
    with factory.begin() as session:
        for entry_id in range(1, 1001):
            audit.inclusion_proof(session, entry_id=entry_id * (entries // 1000))
    elapsed = time.perf_counter() - start
    print(f"inclusion proof: {elapsed:.3f} ms each (1,000 proofs, elapsed ms / 1,000)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres",
        help="also run on this PostgreSQL server (e.g. postgresql://postgres@127.0.0.1/postgres):"
        " in a scratch database made for the run and dropped after",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print("SQLite")
        run(f"sqlite:///{Path(tmp) / 'audit.sqlite3'}", args.entries)
    if args.postgres:
        print("PostgreSQL")
        with scratch_postgres(args.postgres) as url:
            run(url, args.entries)


@contextmanager
def scratch_postgres(server_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped afterwards."""
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=None)
    name = f"citygrid_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield normalise_database_url(server_url).rsplit("/", 1)[0] + f"/{name}"
    finally:
        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
