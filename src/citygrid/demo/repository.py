"""The bulk writes of the demo build: raw DBAPI ``executemany`` on SQLite, COPY on PostgreSQL.

The demo's rows are the initial state of the city, so they are written straight into the
registry tables (no ORM objects, no per-row change history). These functions take a raw
DBAPI connection (``engine.raw_connection().driver_connection``) and leave transactions to
the caller, except where noted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from citygrid.registry.models import HousingUnit, Person
from citygrid.territory.models import Level, TerritorialUnit

Row = tuple[Any, ...]
OnBatch = Callable[[int], None]

BATCH_ROWS = 50_000
"""Rows per executemany call: large enough to amortise the call, small enough for a
progress bar that moves."""

# Pragmas for the build only: the file is a temporary one that is thrown away if the build
# fails, so durability is not needed until the end (see sqlite_restore_pragmas).
_SQLITE_BULK_PRAGMAS = (
    "PRAGMA foreign_keys=OFF",
    "PRAGMA journal_mode=MEMORY",
    "PRAGMA synchronous=OFF",
    "PRAGMA cache_size=-1048576",  # 1 GiB of page cache: every index stays in memory
    "PRAGMA temp_store=MEMORY",
    "PRAGMA locking_mode=EXCLUSIVE",
)
_SQLITE_NORMAL_PRAGMAS = (
    "PRAGMA locking_mode=NORMAL",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-2000",
    "PRAGMA temp_store=DEFAULT",
    "PRAGMA foreign_keys=ON",
)


def is_sqlite(engine: Engine) -> bool:
    """True for a SQLite engine."""
    return engine.dialect.name == "sqlite"


def registry_row_count(session: Session) -> int:
    """How many persons the registry already holds (a demo goes into an empty one)."""
    return int(session.scalar(select(func.count()).select_from(Person)) or 0)


def grid_codes(session: Session, *, code_prefix: str) -> set[str]:
    """The codes of the stored grids under a prefix."""
    return set(
        session.scalars(
            select(TerritorialUnit.code)
            .where(TerritorialUnit.level == Level.GRID)
            .where(TerritorialUnit.code.startswith(code_prefix))
        )
    )


def sqlite_bulk_pragmas(connection: sqlite3.Connection) -> None:
    """Switch a SQLite connection to bulk-load settings (outside any transaction)."""
    for pragma in _SQLITE_BULK_PRAGMAS:
        connection.execute(pragma).fetchall()


def sqlite_restore_pragmas(connection: sqlite3.Connection) -> None:
    """Back to citygrid's normal settings (WAL, synchronous NORMAL, foreign keys on)."""
    for pragma in _SQLITE_NORMAL_PRAGMAS:
        connection.execute(pragma).fetchall()


def sqlite_foreign_key_problems(connection: sqlite3.Connection) -> list[Row]:
    """Rows whose foreign key points at nothing (empty when the load is sound)."""
    return list(connection.execute("PRAGMA foreign_key_check").fetchmany(10))


def sqlite_analyze(connection: sqlite3.Connection) -> None:
    """Give the query planner statistics of the loaded tables (sampled, so it is quick)."""
    connection.execute("PRAGMA analysis_limit=2000").fetchall()
    connection.execute("ANALYZE").fetchall()


def insert_sql(table: str, columns: Sequence[str], placeholder: str) -> str:
    """``INSERT INTO table (columns) VALUES (?, ...)`` for a DBAPI placeholder style."""
    marks = ", ".join([placeholder] * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - names are constants


def sqlite_insert(
    connection: sqlite3.Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Row],
    on_batch: OnBatch | None = None,
) -> None:
    """Insert rows with ``executemany`` in batches, inside the caller's transaction."""
    sql = insert_sql(table, columns, "?")
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start : start + BATCH_ROWS]
        connection.executemany(sql, batch)
        if on_batch is not None:
            on_batch(len(batch))


def postgres_copy(
    connection: Any,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Row],
    on_batch: OnBatch | None = None,
) -> None:
    """Load rows with COPY (psycopg 3), inside the caller's transaction."""
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.copy(statement) as copy:
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start : start + BATCH_ROWS]
            for row in batch:
                copy.write_row(row)
            if on_batch is not None:
                on_batch(len(batch))


def postgres_reset_sequence(connection: Any, table: str) -> None:
    """Move a table's id sequence past the explicit ids the load wrote."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 - constant
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )


def postgres_analyze(connection: Any, tables: Sequence[str]) -> None:
    """Statistics for the planner after a bulk load."""
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"ANALYZE {table}")


# ----------------------------------------------------------------------------- feeds, story
# The simulated feeds pick their subjects in the synthetic city: an indexed lookup from a
# random id (the first match at or after it), so a pick costs one short index range scan.


def max_person_id(session: Session) -> int:
    """The highest person id (0 for an empty registry)."""
    return int(session.scalar(select(func.max(Person.id))) or 0)


def pick_person(
    session: Session,
    *,
    from_id: int,
    born_before: date | None = None,
    born_after: date | None = None,
    sex: str | None = None,
    with_household: bool = False,
) -> int | None:
    """The id of the first living person at or after ``from_id`` matching the conditions."""
    statement = select(Person.id).where(Person.id >= from_id, Person.status == "alive")
    if born_before is not None:
        statement = statement.where(Person.birth_date < born_before)
    if born_after is not None:
        statement = statement.where(Person.birth_date > born_after)
    if sex is not None:
        statement = statement.where(Person.sex == sex)
    if with_household:
        statement = statement.where(Person.household_id.is_not(None))
    return session.scalar(statement.order_by(Person.id).limit(1))


def pick_unit(session: Session, *, from_id: int, uses: Sequence[str]) -> int | None:
    """The id of the first housing unit at or after ``from_id`` of one of these uses."""
    statement = (
        select(HousingUnit.id)
        .where(HousingUnit.id >= from_id, HousingUnit.use.in_(list(uses)))
        .order_by(HousingUnit.id)
        .limit(1)
    )
    return session.scalar(statement)


def max_unit_id(session: Session) -> int:
    """The highest housing unit id (0 when there is none)."""
    return int(session.scalar(select(func.max(HousingUnit.id))) or 0)


# ----------------------------------------------------------------------------- cases
# The simulated case feed and the tile story pick grids and cases with short indexed reads.


def grid_count(session: Session) -> int:
    """How many grids the territory has."""
    return int(
        session.scalar(
            select(func.count())
            .select_from(TerritorialUnit)
            .where(TerritorialUnit.level == Level.GRID)
        )
        or 0
    )


def grid_bounds_at(session: Session, index: int) -> tuple[str, float, float, float, float] | None:
    """The ``index``-th grid in code order: (code, min_lon, min_lat, max_lon, max_lat)."""
    row = session.execute(
        select(
            TerritorialUnit.code,
            TerritorialUnit.min_lon,
            TerritorialUnit.min_lat,
            TerritorialUnit.max_lon,
            TerritorialUnit.max_lat,
        )
        .where(TerritorialUnit.level == Level.GRID)
        .order_by(TerritorialUnit.code)
        .offset(index)
        .limit(1)
    ).first()
    if row is None:
        return None
    return str(row[0]), float(row[1]), float(row[2]), float(row[3]), float(row[4])


def grid_bounds(session: Session, code: str) -> tuple[float, float, float, float] | None:
    """A grid's bounding box (min_lon, min_lat, max_lon, max_lat), None if there is none."""
    row = session.execute(
        select(
            TerritorialUnit.min_lon,
            TerritorialUnit.min_lat,
            TerritorialUnit.max_lon,
            TerritorialUnit.max_lat,
        ).where(TerritorialUnit.code == code, TerritorialUnit.level == Level.GRID)
    ).first()
    return None if row is None else (float(row[0]), float(row[1]), float(row[2]), float(row[3]))


def oldest_case_in_state(
    session: Session, *, state: str, exclude_grid: str | None = None
) -> str | None:
    """The reference of the case longest in a state (by its last change), or None."""
    from citygrid.cases.models import Case, CaseState

    statement = select(Case.ref).where(Case.state == CaseState(state))
    if exclude_grid is not None:
        statement = statement.where(Case.grid_code != exclude_grid)
    return session.scalar(statement.order_by(Case.updated_at, Case.id).limit(1))


def count_cases(session: Session) -> int:
    """How many cases there are."""
    from citygrid.cases.models import Case

    return int(session.scalar(select(func.count()).select_from(Case)) or 0)
