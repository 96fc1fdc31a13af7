"""The demo territory: Guangzhou > Yuexiu District > 18 streets > communities > grids.

The district is a lattice of cells of about 100 m x 100 m (0.01 km2) inside an outline
roughly shaped like Yuexiu (33.8 km2, the Pearl River to the south, Baiyun Mountain's
foothills to the north). Every cell is one grid; cells go to the street of the nearest seed
point (a Voronoi split, mended so that every street is one piece), each street is split into
communities by growing them from spread-out seed cells, and every higher-level polygon is the
union of its cells. Cell corners are computed from integer micro-degrees, so neighbouring
cells share exactly the same vertices: the grids tile without gaps or overlaps and nest
exactly in their community, street and district.
"""

from __future__ import annotations

import json
import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry

from citygrid.demo import vocabulary

CITY_CODE = "440100"
DISTRICT_CODE = "440104"
TARGET_AREA_KM2 = 33.8

# The lattice: origin and step in micro-degrees. 980 micro-degrees of longitude at 23.13 N
# are 100.3 m, 900 micro-degrees of latitude are 100.1 m.
ORIGIN_LON_MICRO = 113_200_000
ORIGIN_LAT_MICRO = 23_080_000
STEP_LON_MICRO = 980
STEP_LAT_MICRO = 900
KM_PER_DEG_LAT = 111.195
KM_PER_DEG_LON = 111.320 * math.cos(math.radians(23.13))

# A rough outline of Yuexiu (lon, lat), scaled below to TARGET_AREA_KM2 about its centroid,
# then moved so that the centroid lies at OUTLINE_CENTRE.
_OUTLINE = (
    (113.238, 23.118),
    (113.250, 23.113),
    (113.265, 23.112),
    (113.280, 23.111),
    (113.293, 23.108),
    (113.305, 23.106),
    (113.318, 23.110),
    (113.320, 23.122),
    (113.314, 23.135),
    (113.318, 23.148),
    (113.305, 23.160),
    (113.298, 23.172),
    (113.285, 23.170),
    (113.278, 23.160),
    (113.268, 23.163),
    (113.258, 23.172),
    (113.246, 23.166),
    (113.247, 23.152),
    (113.240, 23.142),
    (113.236, 23.130),
)
OUTLINE_CENTRE = (113.272, 23.134)

# Parks and lakes (lon, lat, radius km) in the same frame as _OUTLINE: few people live there.
_PARKS = (
    (113.266, 23.141, 0.55),  # Yuexiu Park
    (113.254, 23.141, 0.35),  # Liuhua Lake Park
    (113.287, 23.160, 0.45),  # Luhu Lake
    (113.300, 23.119, 0.25),  # Dongshan Lake
)

# A crude outline of Guangzhou: the city feature only has to contain the district.
_CITY_OUTLINE = (
    (112.96, 23.20),
    (113.05, 23.05),
    (113.15, 22.95),
    (113.30, 22.75),
    (113.45, 22.57),
    (113.62, 22.60),
    (113.55, 22.85),
    (113.65, 23.05),
    (113.90, 23.05),
    (114.05, 23.35),
    (113.95, 23.60),
    (113.80, 23.93),
    (113.55, 23.92),
    (113.40, 23.70),
    (113.20, 23.55),
    (113.05, 23.40),
)

CELLS_PER_COMMUNITY = 15
"""About 0.15 km2 per community: Yuexiu has some 220 communities."""


@dataclass(slots=True)
class Grid:
    """One grid: a lattice cell with its code and place in the hierarchy."""

    code: str
    column: int
    row: int
    street_index: int
    community_code: str
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float
    park_factor: float = 1.0


@dataclass(slots=True)
class Community:
    """A community: a connected set of cells inside one street."""

    code: str
    name_zh: str
    name_en: str
    street_index: int
    grid_codes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DemoTerritory:
    """The whole demo territory, with the GeoJSON FeatureCollection to import."""

    grids: list[Grid]
    communities: list[Community]
    street_codes: list[str]
    collection: dict[str, Any]

    def grid(self, code: str) -> Grid:
        """The grid with this code."""
        for grid in self.grids:
            if grid.code == code:
                return grid
        raise KeyError(code)


def _transform_outline() -> tuple[
    shapely.Polygon, list[tuple[float, float]], list[tuple[float, float, float]]
]:
    """The outline, the street seed points and the parks, scaled to the target area."""
    outline = shapely.Polygon(_OUTLINE)
    area_km2 = outline.area * KM_PER_DEG_LON * KM_PER_DEG_LAT
    scale = math.sqrt(TARGET_AREA_KM2 / area_km2)
    cx, cy = outline.centroid.x, outline.centroid.y
    tx, ty = OUTLINE_CENTRE

    def move(lon: float, lat: float) -> tuple[float, float]:
        return (tx + (lon - cx) * scale, ty + (lat - cy) * scale)

    moved = shapely.Polygon([move(lon, lat) for lon, lat in _OUTLINE])
    seeds = [move(street.seed_lon, street.seed_lat) for street in vocabulary.STREETS]
    parks = [(*move(lon, lat), radius * scale) for lon, lat, radius in _PARKS]
    return moved, seeds, parks


def _lattice_cells(outline: shapely.Polygon) -> list[tuple[int, int]]:
    """(column, row) of every lattice cell whose centre lies inside the outline."""
    min_lon, min_lat, max_lon, max_lat = outline.bounds
    col_lo = int((min_lon * 1e6 - ORIGIN_LON_MICRO) // STEP_LON_MICRO) - 1
    col_hi = int((max_lon * 1e6 - ORIGIN_LON_MICRO) // STEP_LON_MICRO) + 1
    row_lo = int((min_lat * 1e6 - ORIGIN_LAT_MICRO) // STEP_LAT_MICRO) - 1
    row_hi = int((max_lat * 1e6 - ORIGIN_LAT_MICRO) // STEP_LAT_MICRO) + 1
    column_grid, row_grid = np.meshgrid(
        np.arange(col_lo, col_hi + 1), np.arange(row_lo, row_hi + 1)
    )
    columns, rows = column_grid.ravel(), row_grid.ravel()
    centre_lon = (ORIGIN_LON_MICRO + (columns + 0.5) * STEP_LON_MICRO) / 1e6
    centre_lat = (ORIGIN_LAT_MICRO + (rows + 0.5) * STEP_LAT_MICRO) / 1e6
    inside = shapely.contains_xy(outline, centre_lon, centre_lat)
    return [(int(c), int(r)) for c, r in zip(columns[inside], rows[inside], strict=True)]


def _neighbours(cell: tuple[int, int]) -> tuple[tuple[int, int], ...]:
    c, r = cell
    return ((c + 1, r), (c - 1, r), (c, r + 1), (c, r - 1))


def _components(cells: set[tuple[int, int]]) -> list[set[tuple[int, int]]]:
    """The 4-connected pieces of a set of cells, largest first."""
    pieces: list[set[tuple[int, int]]] = []
    left = set(cells)
    while left:
        start = min(left)
        piece = {start}
        queue = deque([start])
        while queue:
            for other in _neighbours(queue.popleft()):
                if other in left and other not in piece:
                    piece.add(other)
                    queue.append(other)
        left -= piece
        pieces.append(piece)
    pieces.sort(key=lambda piece: (-len(piece), min(piece)))
    return pieces


def _keep_largest_piece(cells: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop cells cut off from the main body (so the district is one polygon)."""
    return sorted(_components(set(cells))[0])


def _cell_centre_km(cell: tuple[int, int]) -> tuple[float, float]:
    c, r = cell
    lon = (ORIGIN_LON_MICRO + (c + 0.5) * STEP_LON_MICRO) / 1e6
    lat = (ORIGIN_LAT_MICRO + (r + 0.5) * STEP_LAT_MICRO) / 1e6
    return lon * KM_PER_DEG_LON, lat * KM_PER_DEG_LAT


def _assign_streets(
    cells: list[tuple[int, int]], seeds: list[tuple[float, float]]
) -> dict[tuple[int, int], int]:
    """Each cell to the street of its nearest seed point, then every street made one piece."""
    centres = np.array([_cell_centre_km(cell) for cell in cells])
    seed_km = np.array([(lon * KM_PER_DEG_LON, lat * KM_PER_DEG_LAT) for lon, lat in seeds])
    distances = np.hypot(
        centres[:, None, 0] - seed_km[None, :, 0], centres[:, None, 1] - seed_km[None, :, 1]
    )
    owner = {cell: int(i) for cell, i in zip(cells, distances.argmin(axis=1), strict=True)}
    # A Voronoi region clipped by a non-convex outline may fall apart: hand each stray piece
    # to the neighbouring street it shares the longest border with, until all are whole.
    changed = True
    while changed:
        changed = False
        for street in range(len(seeds)):
            pieces = _components({cell for cell, s in owner.items() if s == street})
            for piece in pieces[1:]:
                border: dict[int, int] = {}
                for cell in piece:
                    for other in _neighbours(cell):
                        s = owner.get(other)
                        if s is not None and s != street:
                            border[s] = border.get(s, 0) + 1
                if border:
                    target = max(sorted(border), key=lambda s: border[s])
                    for cell in piece:
                        owner[cell] = target
                    changed = True
    return owner


def _split_street(
    cells: list[tuple[int, int]], count: int, rng: np.random.Generator
) -> list[list[tuple[int, int]]]:
    """Split a street's connected cells into ``count`` connected communities.

    Seeds are spread by farthest-point sampling; communities grow from them breadth-first in
    turns, one cell each, so they end up compact and of similar size.
    """
    count = max(1, min(count, len(cells)))
    centres = {cell: _cell_centre_km(cell) for cell in cells}
    ordered = sorted(cells)
    seeds = [ordered[int(rng.integers(len(ordered)))]]
    nearest = {cell: math.dist(centres[cell], centres[seeds[0]]) for cell in ordered}
    while len(seeds) < count:
        far = max(ordered, key=lambda cell: nearest[cell])
        seeds.append(far)
        for cell in ordered:
            nearest[cell] = min(nearest[cell], math.dist(centres[cell], centres[far]))
    owner: dict[tuple[int, int], int] = {seed: i for i, seed in enumerate(seeds)}
    frontiers = [deque([seed]) for seed in seeds]
    cell_set = set(cells)
    active = True
    while active:
        active = False
        for i, frontier in enumerate(frontiers):
            while frontier:
                cell = frontier[0]
                free = [n for n in _neighbours(cell) if n in cell_set and n not in owner]
                if not free:
                    frontier.popleft()
                    continue
                owner[free[0]] = i
                frontier.append(free[0])
                active = True
                break
    groups: list[list[tuple[int, int]]] = [[] for _ in seeds]
    for cell, i in owner.items():
        groups[i].append(cell)
    return [sorted(group) for group in groups if group]


def _north_west_first(cell: tuple[int, int]) -> tuple[int, int]:
    return (-cell[1], cell[0])


def _cell_bounds(cell: tuple[int, int]) -> tuple[float, float, float, float]:
    c, r = cell
    return (
        (ORIGIN_LON_MICRO + c * STEP_LON_MICRO) / 1e6,
        (ORIGIN_LAT_MICRO + r * STEP_LAT_MICRO) / 1e6,
        (ORIGIN_LON_MICRO + (c + 1) * STEP_LON_MICRO) / 1e6,
        (ORIGIN_LAT_MICRO + (r + 1) * STEP_LAT_MICRO) / 1e6,
    )


def _union(cells: list[tuple[int, int]]) -> BaseGeometry:
    """The union of cells, with the collinear vertices of the staircase removed."""
    geometry = shapely.union_all([box(*_cell_bounds(cell)) for cell in cells])
    return shapely.simplify(geometry, 0.0)


def _feature(
    code: str,
    level: str,
    name_zh: str,
    name_en: str,
    parent_code: str | None,
    geometry: BaseGeometry,
) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "code": code,
        "level": level,
        "name_zh": name_zh,
        "name_en": name_en,
    }
    if parent_code is not None:
        properties["parent_code"] = parent_code
    # Plain lists (the import checks for JSON arrays, and shapely's mapping gives tuples).
    return {
        "type": "Feature",
        "properties": properties,
        "geometry": json.loads(shapely.to_geojson(geometry)),
    }


def build_territory(seed: int) -> DemoTerritory:
    """The demo territory for a seed (the outline and streets are fixed; communities vary)."""
    rng = np.random.default_rng([seed, 1])
    outline, street_seeds, parks = _transform_outline()
    cells = _keep_largest_piece(_lattice_cells(outline))
    owner = _assign_streets(cells, street_seeds)

    grids: list[Grid] = []
    communities: list[Community] = []
    features: list[dict[str, Any]] = []
    street_codes = [f"{DISTRICT_CODE}{i + 1:03d}" for i in range(len(vocabulary.STREETS))]
    community_names = vocabulary.community_names(rng, 400)
    name_cursor = 0
    for street_index, street in enumerate(vocabulary.STREETS):
        street_code = street_codes[street_index]
        street_cells = sorted(cell for cell, s in owner.items() if s == street_index)
        count = max(2, round(len(street_cells) / CELLS_PER_COMMUNITY))
        groups = _split_street(street_cells, count, rng)
        groups.sort(key=lambda group: _north_west_first(min(group, key=_north_west_first)))
        features.append(
            _feature(
                street_code,
                "street",
                f"{street.name_zh}街道",
                f"{street.name_en} Subdistrict",
                DISTRICT_CODE,
                _union(street_cells),
            )
        )
        for community_number, group in enumerate(groups, start=1):
            community_code = f"{street_code}{community_number:03d}"
            name_zh, name_en = community_names[name_cursor]
            name_cursor += 1
            community = Community(
                code=community_code,
                name_zh=f"{name_zh}社区",
                name_en=f"{name_en} Community",
                street_index=street_index,
            )
            communities.append(community)
            features.append(
                _feature(
                    community_code,
                    "community",
                    community.name_zh,
                    community.name_en,
                    street_code,
                    _union(group),
                )
            )
            for grid_number, cell in enumerate(sorted(group, key=_north_west_first), start=1):
                code = f"{community_code}{grid_number:03d}"
                min_lon, min_lat, max_lon, max_lat = _cell_bounds(cell)
                grid = Grid(
                    code=code,
                    column=cell[0],
                    row=cell[1],
                    street_index=street_index,
                    community_code=community_code,
                    min_lon=min_lon,
                    min_lat=min_lat,
                    max_lon=max_lon,
                    max_lat=max_lat,
                    park_factor=_park_factor(cell, parks),
                )
                grids.append(grid)
                community.grid_codes.append(code)
                features.append(
                    _feature(
                        code,
                        "grid",
                        f"{community.name_zh}第{grid_number:03d}网格",
                        f"{community.name_en} Grid {grid_number:03d}",
                        community_code,
                        box(min_lon, min_lat, max_lon, max_lat),
                    )
                )
    head = [
        _feature(CITY_CODE, "city", "广州市", "Guangzhou", None, shapely.Polygon(_CITY_OUTLINE)),
        _feature(DISTRICT_CODE, "district", "越秀区", "Yuexiu District", CITY_CODE, _union(cells)),
    ]
    collection = {"type": "FeatureCollection", "name": "yuexiu_demo", "features": head + features}
    return DemoTerritory(
        grids=grids, communities=communities, street_codes=street_codes, collection=collection
    )


def _park_factor(cell: tuple[int, int], parks: list[tuple[float, float, float]]) -> float:
    """Below 1 inside a park or lake: fewer people, more trees."""
    x, y = _cell_centre_km(cell)
    factor = 1.0
    for lon, lat, radius in parks:
        distance = math.hypot(x - lon * KM_PER_DEG_LON, y - lat * KM_PER_DEG_LAT)
        if distance < radius:
            factor = min(factor, 0.05 + 0.95 * (distance / radius) ** 2)
    return factor
