"""Builders for territory tests: lattice rectangles, features, and the database state."""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.territory.models import TerritorialUnit, TerritoryRevision

# The mini city's lattice: column x, row y of 0.001-degree cells from (113.265, 23.125).
LON0, LAT0, STEP = 113.265, 23.125, 0.001


def cell_lon(x: float) -> float:
    """Longitude of column ``x`` of the mini city's 0.001-degree lattice."""
    return round(LON0 + STEP * x, 9)


def cell_lat(y: float) -> float:
    """Latitude of row ``y`` of the mini city's 0.001-degree lattice."""
    return round(LAT0 + STEP * y, 9)


def rectangle(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    """A GeoJSON Polygon over lattice cells [x0, x1] x [y0, y1]."""
    a, b = [cell_lon(x0), cell_lat(y0)], [cell_lon(x1), cell_lat(y0)]
    c, d = [cell_lon(x1), cell_lat(y1)], [cell_lon(x0), cell_lat(y1)]
    return {"type": "Polygon", "coordinates": [[a, b, c, d, copy.copy(a)]]}


def feature(
    code: str, level: str, geometry: dict[str, Any], parent_code: str | None = None
) -> dict[str, Any]:
    """A GeoJSON Feature of a unit."""
    properties: dict[str, Any] = {
        "code": code,
        "level": level,
        "name_zh": f"单元{code}",
        "name_en": f"Unit {code}",
    }
    if parent_code is not None:
        properties["parent_code"] = parent_code
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def find(collection: dict[str, Any], code: str) -> dict[str, Any]:
    """The feature of ``code`` in a collection."""
    for item in collection["features"]:
        if item["properties"]["code"] == code:
            return item  # type: ignore[no-any-return]
    raise KeyError(code)


def territory_state(session: Session) -> tuple[int, int, list[tuple[str, str, str]]]:
    """(unit count, revision, every unit's code, names and geometry): to compare before/after."""
    count = session.scalar(select(func.count()).select_from(TerritorialUnit)) or 0
    revision = session.scalar(select(TerritoryRevision.revision)) or 0
    rows = session.execute(
        select(TerritorialUnit.code, TerritorialUnit.name_en, TerritorialUnit.geometry).order_by(
            TerritorialUnit.code
        )
    )
    return count, revision, [tuple(row) for row in rows]  # type: ignore[misc]
