"""Finding the grid of a point, in memory, rebuilt when the territory changes."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from sqlalchemy.orm import Session

from citygrid.kit.actor import SYSTEM
from citygrid.territory import service
from citygrid.territory.locator import Locator, LocatorCache
from citygrid.territory.models import Level
from tests.fixtures_territory import MINI_GRID_CODES, mini_city_collection, point_in_grid
from tests.territory.builders import cell_lat, cell_lon, find, rectangle


@pytest.fixture
def locator(mini_city: Session) -> Locator:
    return Locator.from_session(mini_city)


@pytest.mark.parametrize("code", MINI_GRID_CODES)
def test_a_point_inside_a_grid_finds_it(locator: Locator, code: str) -> None:
    assert locator.locate(*point_in_grid(code)) == code


@pytest.mark.parametrize(
    ("lon", "lat"),
    [
        (113.0, 23.0),  # far away
        (cell_lon(-0.5), cell_lat(0.5)),  # inside the city's outline but in no grid
        (cell_lon(6.0001), cell_lat(1)),  # just east of the last grid
        (float("nan"), 23.1),
    ],
)
def test_a_point_outside_every_grid_finds_none(locator: Locator, lon: float, lat: float) -> None:
    assert locator.locate(lon, lat) is None
    assert list(locator.locate_many([lon], [lat])) == [None]


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        (1, 0.5, "440104001001001"),  # between grids 1 and 2 of one community
        (3, 0.5, "440104001001003"),  # between two streets
        (1, 1, "440104001001001"),  # a corner shared by three grids
        (3, 1, "440104001001003"),  # a corner shared by four grids
        (0, 0.5, "440104001001001"),  # an outer edge: only one grid
        (6, 2, "440104002002002"),  # the outer corner of the last grid
    ],
)
def test_a_point_on_a_shared_edge_goes_to_the_lowest_code(
    locator: Locator, x: float, y: float, expected: str
) -> None:
    lon, lat = cell_lon(x), cell_lat(y)

    assert locator.locate(lon, lat) == expected
    assert list(locator.locate_many([lon], [lat])) == [expected]


def test_many_points_at_once_agree_with_one_at_a_time(locator: Locator) -> None:
    rng = np.random.default_rng(7)
    lons = rng.uniform(cell_lon(-1), cell_lon(7), 3000)
    lats = rng.uniform(cell_lat(-1), cell_lat(3), 3000)
    # Points on the lattice lines too, where edges are shared.
    lattice_lons = np.array([cell_lon(x / 4) for x in range(-2, 27)])
    lattice_lats = np.array([cell_lat(y / 4) for y in range(-2, 11)])
    grid_lons, grid_lats = np.meshgrid(lattice_lons, lattice_lats)
    lons = np.concatenate([lons, grid_lons.ravel()])
    lats = np.concatenate([lats, grid_lats.ravel()])

    codes = locator.locate_many(lons, lats)

    assert list(codes) == [locator.locate(lon, lat) for lon, lat in zip(lons, lats, strict=True)]
    assert {code for code in codes if code is not None} == set(MINI_GRID_CODES)


def test_the_raster_agrees_with_exact_geometry_on_irregular_grids() -> None:
    rng = np.random.default_rng(11)
    seeds = shapely.multipoints(rng.uniform(0, 1, (300, 2)))
    frame = shapely.box(0, 0, 1, 1)
    cells = shapely.intersection(
        shapely.get_parts(shapely.voronoi_polygons(seeds, extend_to=frame)), frame
    )
    codes = [f"440104001001{number:03d}" for number in range(len(cells))]
    locator = Locator(revision=1, codes=codes, geometries=cells)
    lons, lats = rng.uniform(-0.1, 1.1, 20000), rng.uniform(-0.1, 1.1, 20000)
    vertices = shapely.get_coordinates(cells)
    lons = np.concatenate([lons, vertices[:, 0]])
    lats = np.concatenate([lats, vertices[:, 1]])

    fast = locator.locate_many(lons, lats)

    # The reference: each cell tested against every point, the lowest code kept.
    exact: list[str | None] = [None] * len(lons)
    for code, cell in reversed(list(zip(codes, cells, strict=True))):
        for number in np.flatnonzero(shapely.intersects_xy(cell, lons, lats)):
            exact[number] = code
    assert list(fast) == exact


def test_an_empty_territory_locates_nothing(db_session: Session) -> None:
    locator = Locator.from_session(db_session)

    assert len(locator) == 0
    assert locator.locate(113.27, 23.13) is None
    assert list(locator.locate_many(np.array([113.27]), np.array([23.13]))) == [None]


def test_the_cache_rebuilds_after_a_reimport_changes_the_revision(mini_city: Session) -> None:
    cache = LocatorCache()
    first = cache.get(mini_city)
    between_grid_1_and_2 = (cell_lon(1.25), cell_lat(0.5))
    assert first.locate(*between_grid_1_and_2) == "440104001001002"
    assert cache.get(mini_city) is first

    collection = mini_city_collection()
    find(collection, "440104001001001")["geometry"] = rectangle(0, 0, 1.5, 1)
    find(collection, "440104001001002")["geometry"] = rectangle(1.5, 0, 2, 1)
    service.import_feature_collection(mini_city, SYSTEM, collection=collection)

    second = cache.get(mini_city)
    assert second is not first
    assert second.revision == first.revision + 1
    assert second.locate(*between_grid_1_and_2) == "440104001001001"


def test_the_locator_knows_the_names_above_each_grid(locator: Locator) -> None:
    grid = locator.unit("440104002001002")
    community = locator.unit("440104002001")

    assert grid is not None and grid.parent_code == "440104002001"
    assert community is not None and community.name_en == "Guangta Community"
    assert community.level is Level.COMMUNITY
    assert locator.unit("440104002001009") is None
