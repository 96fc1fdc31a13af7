"""The mini city: a small territory every domain's tests can stand on.

Guangzhou (440100) > Yuexiu District (440104) > 2 streets > 2 communities each > 2-3 grids
each (10 grids of 0.001 x 0.001 degrees, about 102 m x 111 m, around lon 113.27, lat 23.13).

    from tests.fixtures_territory import import_mini_city, MINI_GRID_CODES, point_in_grid

    def test_something(db_session):
        import_mini_city(db_session)
        lon, lat = point_in_grid("440104001001001")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

MINI_CITY_PATH = Path(__file__).resolve().parent / "data" / "mini_city.geojson"

CITY_CODE = "440100"
DISTRICT_CODE = "440104"
STREET_CODES = ("440104001", "440104002")
COMMUNITY_CODES = ("440104001001", "440104001002", "440104002001", "440104002002")
MINI_GRID_CODES = (
    "440104001001001",
    "440104001001002",
    "440104001001003",
    "440104001002001",
    "440104001002002",
    "440104002001001",
    "440104002001002",
    "440104002001003",
    "440104002002001",
    "440104002002002",
)


def mini_city_collection() -> dict[str, Any]:
    """The mini city as a GeoJSON FeatureCollection (a fresh copy each call)."""
    collection: dict[str, Any] = json.loads(MINI_CITY_PATH.read_text(encoding="utf-8"))
    return collection


def import_mini_city(session: Session) -> None:
    """Import the mini city into the database of ``session`` (flushes, does not commit)."""
    from citygrid.kit.actor import SYSTEM
    from citygrid.territory.service import import_feature_collection

    import_feature_collection(session, SYSTEM, collection=mini_city_collection())


def point_in_grid(code: str) -> tuple[float, float]:
    """A (lon, lat) well inside the grid ``code`` of the mini city (its bbox centre)."""
    for feature in mini_city_collection()["features"]:
        if feature["properties"]["code"] == code:
            ring = feature["geometry"]["coordinates"][0]
            lons = [point[0] for point in ring]
            lats = [point[1] for point in ring]
            return (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2
    raise KeyError(code)
