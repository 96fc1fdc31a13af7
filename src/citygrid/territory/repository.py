"""Every query of the territory domain."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, func, insert, select, update
from sqlalchemy.orm import Session

from citygrid.territory.models import Level, TerritorialUnit, TerritoryRevision

# Keeps IN lists well below every database's limit on bound parameters.
CHUNK = 900

REVISION_ROW_ID = 1

# The table itself: a Core INSERT skips the ORM's per-row bookkeeping (about twice as fast).
UNITS = cast(Table, TerritorialUnit.__table__)

_unit_columns = (
    TerritorialUnit.code,
    TerritorialUnit.level,
    TerritorialUnit.parent_code,
    TerritorialUnit.name_zh,
    TerritorialUnit.name_en,
)


def code_range(code_prefix: str) -> tuple[str, str]:
    """Lowest and highest code starting with a prefix: a range scan on the primary key
    (LIKE would not use the index on PostgreSQL with a non-C collation)."""
    return code_prefix, code_prefix + "9" * (15 - len(code_prefix))


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def get_unit(session: Session, code: str) -> TerritorialUnit | None:
    """The unit with a code, or None."""
    return session.get(TerritorialUnit, code)


def units_by_codes(session: Session, codes: Iterable[str]) -> list[Row[Any]]:
    """(code, level, parent_code, name_zh, name_en, geometry) of the stored units among
    ``codes`` (plain rows: the import updates in bulk, past the identity map)."""
    wanted = sorted(set(codes))
    rows: list[Row[Any]] = []
    for chunk in _chunks(wanted):
        query = select(*_unit_columns, TerritorialUnit.geometry).where(
            TerritorialUnit.code.in_(chunk)
        )
        rows.extend(session.execute(query))
    return rows


def unit_refs_by_codes(session: Session, codes: Iterable[str]) -> list[Row[Any]]:
    """(code, level, parent_code, name_zh, name_en) of the stored units among ``codes``."""
    wanted = sorted(set(codes))
    rows: list[Row[Any]] = []
    for chunk in _chunks(wanted):
        rows.extend(session.execute(select(*_unit_columns).where(TerritorialUnit.code.in_(chunk))))
    return rows


def units_of_level(session: Session, level: Level) -> list[Row[Any]]:
    """(code, level, parent_code, name_zh, name_en) of every unit of a level."""
    query = select(*_unit_columns).where(TerritorialUnit.level == level)
    return list(session.execute(query.order_by(TerritorialUnit.code)))


def children(session: Session, code: str) -> list[Row[Any]]:
    """(code, level, parent_code, name_zh, name_en) of a unit's direct children, by code."""
    query = select(*_unit_columns).where(TerritorialUnit.parent_code == code)
    return list(session.execute(query.order_by(TerritorialUnit.code)))


def children_geometries(session: Session, parent_codes: Iterable[str]) -> list[Row[Any]]:
    """(code, level, parent_code, geometry) of the children of the given units."""
    wanted = sorted(set(parent_codes))
    rows: list[Row[Any]] = []
    columns = (
        TerritorialUnit.code,
        TerritorialUnit.level,
        TerritorialUnit.parent_code,
        TerritorialUnit.geometry,
    )
    for chunk in _chunks(wanted):
        query = select(*columns).where(TerritorialUnit.parent_code.in_(chunk))
        rows.extend(session.execute(query))
    return rows


def grid_codes_in_bbox(
    session: Session, min_lon: float, min_lat: float, max_lon: float, max_lat: float
) -> list[str]:
    """Codes of the stored grids whose bounding box meets the given one."""
    query = select(TerritorialUnit.code).where(
        TerritorialUnit.level == Level.GRID,
        TerritorialUnit.max_lon >= min_lon,
        TerritorialUnit.min_lon <= max_lon,
        TerritorialUnit.max_lat >= min_lat,
        TerritorialUnit.min_lat <= max_lat,
    )
    return list(session.scalars(query))


def units_under(session: Session, code_prefix: str, level: Level) -> list[Row[Any]]:
    """(code, name_zh, name_en, geometry) of the units of ``level`` whose code starts with
    the prefix, by code."""
    low, high = code_range(code_prefix)
    query = (
        select(
            TerritorialUnit.code,
            TerritorialUnit.name_zh,
            TerritorialUnit.name_en,
            TerritorialUnit.geometry,
        )
        .where(
            TerritorialUnit.code >= low,
            TerritorialUnit.code <= high,
            TerritorialUnit.level == level,
        )
        .order_by(TerritorialUnit.code)
    )
    return list(session.execute(query))


def grid_refs_under(session: Session, code_prefix: str) -> list[Row[Any]]:
    """(code, level, parent_code, name_zh, name_en) of the grids under a prefix, by code."""
    low, high = code_range(code_prefix)
    query = (
        select(*_unit_columns)
        .where(
            TerritorialUnit.code >= low,
            TerritorialUnit.code <= high,
            TerritorialUnit.level == Level.GRID,
        )
        .order_by(TerritorialUnit.code)
    )
    return list(session.execute(query))


def all_grid_geometries(session: Session) -> list[Row[Any]]:
    """(code, geometry) of every grid, by code."""
    query = select(TerritorialUnit.code, TerritorialUnit.geometry).where(
        TerritorialUnit.level == Level.GRID
    )
    return list(session.execute(query.order_by(TerritorialUnit.code)))


def all_unit_refs(session: Session) -> list[Row[Any]]:
    """(code, level, parent_code, name_zh, name_en) of every unit."""
    return list(session.execute(select(*_unit_columns)))


def count_units(session: Session) -> int:
    """How many units are stored."""
    return session.scalar(select(func.count()).select_from(TerritorialUnit)) or 0


def insert_units(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert units in one executemany (parents must be inserted before their children)."""
    if rows:
        session.execute(insert(UNITS), rows)


def update_units(session: Session, rows: list[dict[str, Any]]) -> None:
    """Update units by code in one executemany (each row holds ``code`` and the new values)."""
    if rows:
        session.execute(update(TerritorialUnit), rows)


def territory_revision(session: Session) -> int:
    """The current territory revision (0 before the first import)."""
    query = select(TerritoryRevision.revision).where(TerritoryRevision.id == REVISION_ROW_ID)
    return session.scalar(query) or 0


def bump_territory_revision(session: Session) -> int:
    """Add one to the territory revision and return it.

    The UPDATE takes the row lock, so concurrent imports are numbered one after the other.
    """
    result = session.execute(
        update(TerritoryRevision)
        .where(TerritoryRevision.id == REVISION_ROW_ID)
        .values(revision=TerritoryRevision.revision + 1)
        .returning(TerritoryRevision.revision)
    )
    revision = result.scalar()
    if revision is None:
        session.execute(insert(TerritoryRevision).values(id=REVISION_ROW_ID, revision=1))
        revision = 1
    return int(revision)
