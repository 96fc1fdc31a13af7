"""Building the demo database: migrate, load the component catalogue, import the territory,
then bulk-load the registry rows.

The demo load is the initial state of the city: it writes no registry history
(``registry_changes`` stays empty); every change made afterwards through the services is
recorded as usual.

:func:`build_demo_file` builds a SQLite file atomically: into a temporary file next to the
target, renamed over it only when complete, so a killed build never leaves a half-built demo
that ``citygrid demo`` would serve. :func:`build_demo_database` fills any empty database
(SQLite or PostgreSQL) given by URL.
"""

from __future__ import annotations

import gc
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from citygrid.access.demo_accounts import DemoAccount, create_demo_accounts
from citygrid.demo import repository
from citygrid.demo.cases import CASE_COLUMNS, generate_case_rows
from citygrid.demo.datasets import DATASET_COLUMNS, department_rows
from citygrid.demo.geography import build_territory
from citygrid.demo.population import (
    COLUMNS as REGISTRY_COLUMNS,
)
from citygrid.demo.population import (
    GENERATION_STEPS,
    ComponentClassInfo,
    generate_rows,
)
from citygrid.demo.seed import DEFAULT_RESIDENTS, DEFAULT_SEED, MINIMUM_RESIDENTS
from citygrid.kit.actor import Actor
from citygrid.kit.db import make_engine
from citygrid.kit.errors import Conflict, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.migrate import upgrade
from citygrid.kit.models import utcnow
from citygrid.kit.settings import DEMO_SECRET, get_settings, normalise_database_url, sqlite_url
from citygrid.registry.catalogue import load_component_classes, sync_component_classes
from citygrid.territory.service import import_feature_collection

DEMO_ACTOR = Actor(name="demo-builder", role="system")
COLUMNS = REGISTRY_COLUMNS | DATASET_COLUMNS | CASE_COLUMNS
TABLE_ORDER = tuple(COLUMNS)
"""Insert order: the registry's tables, then the departments' (they point at persons), then
the case history (it points at grids and at its own cases)."""
_PERSON_GRID = REGISTRY_COLUMNS["persons"].index("grid_code")
MAXIMUM_RESIDENTS = 20_000_000
"""A city of about 20 million is the largest the design plans for."""


class BuildProgress(Protocol):
    """Receives the build's progress (the CLI shows it with rich.progress)."""

    def phase(self, name: str, total: int | None = None) -> None:
        """A phase starts; ``total`` rows if it counts rows."""

    def advance(self, rows: int) -> None:
        """``rows`` more rows of the current phase are done."""


class _Silent:
    def phase(self, name: str, total: int | None = None) -> None:
        """Ignore."""

    def advance(self, rows: int) -> None:
        """Ignore."""


@dataclass(slots=True)
class BuildReport:
    """What a build made and how long each phase took (seconds)."""

    residents: int
    seed: int
    counts: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)
    total_seconds: float = 0.0
    accounts: list[DemoAccount] = field(default_factory=list)
    case_states: dict[str, int] = field(default_factory=dict)

    @property
    def person_insert_seconds(self) -> float:
        """Time spent inserting the persons rows."""
        return self.phases.get("insert persons", 0.0)


def check_residents(residents: int) -> None:
    """ValidationFailed unless the size can hold the seed grid (and is not absurd)."""
    if residents < MINIMUM_RESIDENTS:
        raise ValidationFailed.one(
            "residents",
            _("must be at least {minimum}: the seed grid alone has that many residents").format(
                minimum=MINIMUM_RESIDENTS
            ),
        )
    if residents > MAXIMUM_RESIDENTS:
        raise ValidationFailed.one(
            "residents", _("must be at most {maximum}").format(maximum=MAXIMUM_RESIDENTS)
        )


def check_seed(seed: int) -> None:
    """ValidationFailed for a negative seed (the random generators need one >= 0)."""
    if seed < 0:
        raise ValidationFailed.one("seed", _("must be zero or more"))


@contextmanager
def _garbage_collector_paused() -> Iterator[None]:
    """Millions of fresh tuples would trigger many full collections that find nothing (rows
    hold no reference cycles); pausing the collector saves about a tenth of the build."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Clock:
    def __init__(self, report: BuildReport) -> None:
        self.report = report

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.report.phases[name] = time.perf_counter() - started


def build_demo_database(
    database_url: str,
    *,
    residents: int = DEFAULT_RESIDENTS,
    seed: int = DEFAULT_SEED,
    progress: BuildProgress | None = None,
) -> BuildReport:
    """Migrate a database and fill it with the demo city; refuses a registry with persons."""
    check_residents(residents)
    check_seed(seed)
    progress = progress or _Silent()
    now = utcnow()
    report = BuildReport(residents=residents, seed=seed)
    clock = _Clock(report)
    started = time.perf_counter()

    progress.phase("migrate")
    with clock.phase("migrate"):
        upgrade(database_url)
    # SQLite: no pooled connection may stay open, the bulk load changes the journal mode.
    sqlite = normalise_database_url(database_url).startswith("sqlite")
    engine = make_engine(database_url, poolclass=NullPool) if sqlite else make_engine(database_url)
    try:
        progress.phase("territory")
        with clock.phase("territory"):
            territory = build_territory(seed)
            with Session(engine) as session:
                if repository.registry_row_count(session):
                    raise Conflict(
                        _("The database already holds residents: build into an empty one.")
                    )
                sync_component_classes(session)
                import_feature_collection(
                    session, DEMO_ACTOR, collection=territory.collection, replace=False
                )
                session.commit()
        classes = [
            ComponentClassInfo(item.code, item.slug, item.owner_department)
            for item in load_component_classes()
        ]
        with _garbage_collector_paused():
            progress.phase("generate", GENERATION_STEPS)
            with clock.phase("generate"):
                rows = generate_rows(
                    territory,
                    classes,
                    residents=residents,
                    seed=seed,
                    progress=lambda _step: progress.advance(1),
                )
            progress.phase("department data")
            with clock.phase("department data"):
                department_rows(rows, seed=seed)
            progress.phase("case history")
            with clock.phase("case history"):
                per_grid = Counter(row[_PERSON_GRID] for row in rows.tables["persons"])
                cases = generate_case_rows(
                    territory,
                    residents_per_grid=per_grid,
                    residents=residents,
                    seed=seed,
                    now=now,
                    sqlite=sqlite,
                )
                rows.tables.update(cases.tables)
                report.case_states = dict(cases.states)
            report.counts = {table: rows.count(table) for table in TABLE_ORDER}
            report.counts["grids"] = len(territory.grids)
            report.counts["communities"] = len(territory.communities)
            _load(engine, rows.tables, clock, progress)
        progress.phase("accounts")
        with clock.phase("accounts"), Session(engine) as session:
            report.accounts = _create_accounts(session)
            session.commit()
    finally:
        engine.dispose()
    report.total_seconds = time.perf_counter() - started
    return report


def _create_accounts(session: Session) -> list[DemoAccount]:
    """One account per role and one API client per department, with the demo password (a
    demo database is in demo mode whatever the environment says)."""
    settings = get_settings().model_copy(update={"demo_mode": True})
    return create_demo_accounts(session, password=DEMO_SECRET, settings=settings)


def _load(
    engine: Engine,
    tables: dict[str, list[tuple[Any, ...]]],
    clock: _Clock,
    progress: BuildProgress,
) -> None:
    """Write every table in one transaction on the raw DBAPI connection."""
    raw = engine.raw_connection()
    try:
        dbapi: Any = raw.driver_connection
        if repository.is_sqlite(engine):
            _load_sqlite(dbapi, tables, clock, progress)
        else:
            _load_postgres(dbapi, tables, clock, progress)
    finally:
        raw.close()


def _load_sqlite(
    connection: Any,
    tables: dict[str, list[tuple[Any, ...]]],
    clock: _Clock,
    progress: BuildProgress,
) -> None:
    repository.sqlite_bulk_pragmas(connection)
    try:
        connection.execute("BEGIN")
        for table in TABLE_ORDER:
            progress.phase(f"insert {table}", len(tables[table]))
            with clock.phase(f"insert {table}"):
                repository.sqlite_insert(
                    connection, table, COLUMNS[table], tables[table], progress.advance
                )
            # Free each table's rows once written: the big ones hold a lot of memory.
            tables[table] = []
        progress.phase("commit")
        with clock.phase("commit"):
            connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    progress.phase("check")
    with clock.phase("check"):
        problems = repository.sqlite_foreign_key_problems(connection)
        if problems:
            raise RuntimeError(f"demo load broke {len(problems)} foreign keys")
        repository.sqlite_analyze(connection)
        repository.sqlite_restore_pragmas(connection)


def _load_postgres(
    connection: Any,
    tables: dict[str, list[tuple[Any, ...]]],
    clock: _Clock,
    progress: BuildProgress,
) -> None:
    try:
        for table in TABLE_ORDER:
            progress.phase(f"insert {table}", len(tables[table]))
            with clock.phase(f"insert {table}"):
                repository.postgres_copy(
                    connection, table, COLUMNS[table], tables[table], progress.advance
                )
                repository.postgres_reset_sequence(connection, table)
            tables[table] = []
        progress.phase("commit")
        with clock.phase("commit"):
            connection.commit()
    except BaseException:
        connection.rollback()
        raise
    progress.phase("check")
    with clock.phase("check"):
        connection.autocommit = True
        repository.postgres_analyze(connection, TABLE_ORDER)


def _sqlite_side_files(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


def remove_database_file(path: Path) -> None:
    """Delete a SQLite file with its WAL, shared-memory and journal files."""
    for candidate in (path, *_sqlite_side_files(path)):
        candidate.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_builds(path: Path) -> None:
    """Delete the temporary files of builds that were killed (their process is gone)."""
    prefix = f".{path.name}.building-"
    for candidate in path.parent.glob(f"{prefix}*"):
        pid = candidate.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            candidate.unlink(missing_ok=True)


def build_demo_file(
    path: Path,
    *,
    residents: int = DEFAULT_RESIDENTS,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    progress: BuildProgress | None = None,
) -> BuildReport:
    """Build the demo into a SQLite file: a temporary file first, renamed when complete."""
    check_residents(residents)
    check_seed(seed)
    if path.exists() and not force:
        raise Conflict(
            _("The file already exists; use --force to replace it."), details={"field": "db"}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(path)
    temporary = path.with_name(f".{path.name}.building-{os.getpid()}")
    remove_database_file(temporary)
    try:
        report = build_demo_database(
            sqlite_url(temporary), residents=residents, seed=seed, progress=progress
        )
        # Stale WAL files of the old database must not be replayed into the new one.
        for side_file in _sqlite_side_files(path):
            side_file.unlink(missing_ok=True)
        os.replace(temporary, path)
    finally:
        remove_database_file(temporary)
    return report
