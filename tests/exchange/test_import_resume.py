"""``citygrid import`` as an operator runs it, against a real committed database: its exit
codes, an import killed with SIGKILL halfway and run again (every row exactly once), and
memory that stays flat whatever the size of the file."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.pool import NullPool

from citygrid.demo.builder import build_demo_database
from citygrid.kit.db import make_engine
from citygrid.kit.settings import normalise_database_url, sqlite_url
from tests.conftest import IN_CI, POSTGRES_URL

RESIDENTS = 12_000
HEADER = ["id_number", "amount", "status", "since"]


@dataclass
class City:
    """A demo city in a committed database, and the ID numbers of its residents."""

    url: str
    id_numbers: list[str]

    def engine(self) -> Engine:
        return _engine(self.url)

    def scalar(self, sql: str) -> int:
        engine = self.engine()
        try:
            with engine.connect() as connection:
                return int(connection.execute(text(sql)).scalar_one() or 0)
        finally:
            engine.dispose()


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        return make_engine(url, poolclass=NullPool)
    return make_engine(url, pool_size=1, max_overflow=0)


def _build(url: str) -> City:
    build_demo_database(url, residents=RESIDENTS)
    engine = _engine(url)
    with engine.connect() as connection:
        numbers = [row[0] for row in connection.execute(text("SELECT id_number FROM persons"))]
    engine.dispose()
    return City(url, numbers)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def committed_city(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[City]:
    """A demo city of 12,000 residents in its own database, on each backend."""
    if request.param == "sqlite":
        yield _build(sqlite_url(tmp_path_factory.mktemp("import") / "city.sqlite3"))
        return
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=None)
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        admin.dispose()
        if IN_CI:
            raise
        pytest.skip("PostgreSQL is not reachable")
    name = f"citygrid_import_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    base = normalise_database_url(POSTGRES_URL).rsplit("/", 1)[0]
    try:
        yield _build(f"{base}/{name}")
    finally:
        from citygrid.kit.db import dispose_engines

        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _pensions_file(path: Path, numbers: list[str], *, bad_every: int = 0) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for position, number in enumerate(numbers):
            amount = "-1" if bad_every and position % bad_every == bad_every - 1 else "2500.00"
            writer.writerow([number, amount, "active", "2022-01-01"])
    return path


def _cli(city: City, *args: str) -> subprocess.Popen[str]:
    environment = os.environ | {
        "CITYGRID_DATABASE_URL": city.url,
        "CITYGRID_DEFAULT_LOCALE": "en",
        "CITYGRID_DEMO_MODE": "true",
    }
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("citygrid")), "import", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _processes_reading(path: Path) -> list[int]:
    """Process ids whose command line names the file (an import and its reader)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(") ", 1)[1][0]
        except OSError:
            continue  # ended meanwhile
        if state != "Z" and str(path).encode() in command.split(b"\0"):
            found.append(int(entry.name))
    return found


def _reset(city: City) -> None:
    engine = city.engine()
    with engine.begin() as connection:
        for table in ("exchange_pensions", "exchange_publications", "exchange_import_jobs"):
            connection.execute(text(f"DELETE FROM {table}"))  # noqa: S608
        connection.execute(text("DELETE FROM outbox WHERE topic = 'dataset.pensions'"))
    engine.dispose()


def test_exit_codes_tell_ok_rejected_rows_and_errors(committed_city: City, tmp_path: Path) -> None:
    _reset(committed_city)
    numbers = committed_city.id_numbers[:300]
    clean = _pensions_file(tmp_path / "clean.csv", numbers[:100])
    mixed = _pensions_file(tmp_path / "mixed.csv", numbers[100:300], bad_every=50)

    ok = _cli(committed_city, "pensions", str(clean), "--department", "social-security")
    assert ok.wait(timeout=120) == 0, ok.stderr.read() if ok.stderr else ""
    rejected = _cli(
        committed_city,
        "pensions",
        str(mixed),
        "--department",
        "social-security",
        "--errors",
        str(tmp_path / "mixed-errors.csv"),
    )
    out, _err = rejected.communicate(timeout=120)
    wrong = _cli(committed_city, "pensions", str(clean), "--department", "civil-affairs")
    _out, wrong_err = wrong.communicate(timeout=120)

    assert rejected.returncode == 2
    assert "4 rejected" in out
    assert wrong.returncode == 1
    assert "owning department" in wrong_err
    assert committed_city.scalar("SELECT count(*) FROM exchange_pensions") == 296
    lines = (tmp_path / "mixed-errors.csv").read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "line,row,field,reason"
    assert [line.split(",")[:3] for line in lines[1:]] == [
        [str(row + 1), str(row), "amount"] for row in (50, 100, 150, 200)
    ]


@pytest.mark.parametrize("read_ahead", [False, True], ids=["in-process", "read-ahead"])
def test_an_import_killed_halfway_finishes_on_the_next_run_with_every_row_once(
    committed_city: City, tmp_path: Path, read_ahead: bool
) -> None:
    _reset(committed_city)
    numbers = committed_city.id_numbers
    source = _pensions_file(tmp_path / "pensions.csv", numbers, bad_every=1000)
    args = (
        "pensions",
        str(source),
        "--department",
        "social-security",
        "--batch-size",
        "40",
        *(("--read-ahead",) if read_ahead else ()),
    )
    errors = str(tmp_path / "errors.csv")

    running = _cli(committed_city, *args, "--errors", errors)
    deadline = time.monotonic() + 120
    committed = 0
    while committed < 400 and time.monotonic() < deadline and running.poll() is None:
        committed = committed_city.scalar("SELECT max(rows_done) FROM exchange_import_jobs")
    running.send_signal(signal.SIGKILL)
    running.wait(timeout=30)
    assert running.returncode == -signal.SIGKILL, "the import ended before it was killed"

    # What the checkpoint says is exactly what the database holds: committed together.
    done = committed_city.scalar("SELECT rows_done FROM exchange_import_jobs")
    assert 400 <= done < len(numbers)
    held = committed_city.scalar("SELECT count(*) FROM exchange_pensions")
    assert held == done - done // 1000
    # Its reader process, left without the process it read for, stops on its own.
    deadline = time.monotonic() + 30
    while (readers := _processes_reading(source)) and time.monotonic() < deadline:
        pass
    assert readers == []

    again = _cli(committed_city, *args, "--errors", errors)
    out, err = again.communicate(timeout=300)

    assert again.returncode == 2, err
    assert "Resumed an interrupted import" in out
    good = len(numbers) - len(numbers) // 1000
    assert committed_city.scalar("SELECT count(*) FROM exchange_pensions") == good
    assert committed_city.scalar("SELECT count(DISTINCT person_id) FROM exchange_pensions") == good
    assert committed_city.scalar("SELECT sum(received) FROM exchange_publications") == len(numbers)
    outbox = "SELECT count(*) FROM outbox WHERE topic = 'dataset.pensions'"
    assert committed_city.scalar(outbox) == good
    report = (tmp_path / "errors.csv").read_text(encoding="utf-8-sig").splitlines()[1:]
    assert [int(line.split(",")[1]) for line in report] == list(range(1000, len(numbers) + 1, 1000))


_MEASURE = """
import resource, sys
from pathlib import Path
from citygrid.exchange.importing import ImportRequest, run_import
from citygrid.kit.db import get_session_factory
request = ImportRequest(dataset="pensions", path=Path(sys.argv[2]), department="social-security",
                        batch_size=2000, errors_path=Path(sys.argv[3]), read_ahead=True)
result = run_import(get_session_factory(sys.argv[1]), request)
peaks = [resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN)]
print(result.rows, sum(peaks))  # the importing process and its reader
"""


# The reading and batching are the same on both backends: SQLite alone is measured.
@pytest.mark.parametrize("committed_city", ["sqlite"], indirect=True)
def test_memory_stays_flat_whatever_the_size_of_the_file(
    committed_city: City, tmp_path: Path
) -> None:
    numbers = committed_city.id_numbers

    def peak_kib(rows: int) -> int:
        """The peak resident memory of a process importing a file of ``rows`` rows."""
        _reset(committed_city)
        # More rows than residents: the file goes round them again (updates).
        path = tmp_path / f"pensions-{rows}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(HEADER)
            for position in range(rows):
                amount = f"{2000 + position // len(numbers)}.00"
                writer.writerow([numbers[position % len(numbers)], amount, "active", "2022-01-01"])
        measured = subprocess.run(
            [sys.executable, "-c", _MEASURE, committed_city.url, str(path), str(tmp_path / "e")],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        imported, peak = measured.stdout.split()
        assert int(imported) == rows
        return int(peak)

    small = peak_kib(10_000)
    large = peak_kib(120_000)

    # Twelve times the rows, the same memory (within allocator noise).
    assert large < small + 8 * 1024, (small, large)
