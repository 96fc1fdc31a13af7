"""Point to grid: an in-memory index of every grid polygon, rebuilt from the database.

Two layers answer a lookup:

1. a raster over the grids' extent whose cells are labelled with the grid whose interior
   holds the whole cell (or "outside every grid"), found once at build time; a point in such
   a cell is answered by two array look-ups, with no geometry work at all;
2. cells that a boundary passes through (or near) are marked unknown, and points in them are
   answered exactly by a shapely ``STRtree`` query with the ``intersects`` predicate.

A point on a boundary shared by several grids belongs to the grid with the lowest code, so
every process answers alike. Nothing here outlives a change of territory: the app keeps one
:class:`Locator` per process in a :class:`LocatorCache`, which compares the locator's
revision with ``territory_revisions`` on every request and rebuilds it under a lock.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from sqlalchemy.orm import Session

from citygrid.territory import repository
from citygrid.territory.models import Level

MAX_RASTER_CELLS = 4_000_000
"""Upper bound on raster cells (4 bytes each): at most 16 MB per process."""

CELLS_PER_GRID = 12
"""Raster cells along a typical grid's side: finer cells resolve more points without
geometry, at the cost of memory and build time."""

# Boundaries are widened by this much (degrees, ~0.1 mm) when marking unknown cells, so a
# labelled cell is never within rounding distance of a boundary.
BOUNDARY_MARGIN_DEG = 1e-9

UNKNOWN = -1
OUTSIDE = -2


@dataclass(frozen=True, slots=True)
class UnitEntry:
    """A unit's place in the hierarchy and its names, kept for the locate answer."""

    code: str
    level: Level
    parent_code: str | None
    name_zh: str
    name_en: str


@dataclass(frozen=True, slots=True)
class _Raster:
    labels: NDArray[np.int32]  # (rows, columns): grid index, UNKNOWN or OUTSIDE
    min_lon: float
    min_lat: float
    cell: float


class Locator:
    """Finds the grid of a point; immutable once built, safe to share between threads."""

    def __init__(
        self,
        *,
        revision: int,
        codes: list[str],
        geometries: NDArray[np.object_],
        units: dict[str, UnitEntry] | None = None,
    ) -> None:
        order = np.argsort(np.asarray(codes, dtype=object)) if codes else np.array([], int)
        self.revision = revision
        # Grid index = rank of its code, so "lowest code wins" is "lowest index wins".
        self.codes: NDArray[np.object_] = np.asarray(codes, dtype=object)[order]
        self.geometries: NDArray[np.object_] = np.asarray(geometries, dtype=object)[order]
        # Plain tuples of strings: CPython stops tracking them in the garbage collector,
        # which keeps full collections short in a process holding 20,000 of them.
        self._units: dict[str, tuple[str, str, str | None, str, str]] = {
            code: (entry.code, entry.level.value, entry.parent_code, entry.name_zh, entry.name_en)
            for code, entry in (units or {}).items()
        }
        self._codes_or_none: NDArray[np.object_] = np.concatenate(
            [self.codes, np.array([None], dtype=object)]
        )
        self._tree = shapely.STRtree(self.geometries)
        self._raster = self._build_raster() if len(self.codes) else None

    @classmethod
    def from_session(cls, session: Session) -> Locator:
        """Build a locator from the territory stored in the database."""
        # The revision is read first: if the territory changes in between, the locator
        # holds the newer grids under the older number and is simply rebuilt once more.
        revision = repository.territory_revision(session)
        rows = repository.all_grid_geometries(session)
        geometries = shapely.from_geojson(np.array([row.geometry for row in rows], dtype=object))
        units = {
            row.code: UnitEntry(
                row.code, Level(row.level), row.parent_code, row.name_zh, row.name_en
            )
            for row in repository.all_unit_refs(session)
        }
        return cls(
            revision=revision,
            codes=[row.code for row in rows],
            geometries=np.asarray(geometries, dtype=object),
            units=units,
        )

    def __len__(self) -> int:
        return len(self.codes)

    def unit(self, code: str) -> UnitEntry | None:
        """The level, parent and names of any unit (not only grids), or None."""
        row = self._units.get(code)
        if row is None:
            return None
        return UnitEntry(row[0], Level(row[1]), row[2], row[3], row[4])

    # ------------------------------------------------------------------ lookups

    def locate(self, lon: float, lat: float) -> str | None:
        """The code of the grid holding the point, or None if it is outside every grid."""
        if self._raster is None or not (math.isfinite(lon) and math.isfinite(lat)):
            return None
        raster = self._raster
        column = math.floor((lon - raster.min_lon) / raster.cell)
        row = math.floor((lat - raster.min_lat) / raster.cell)
        rows, columns = raster.labels.shape
        if not (0 <= row < rows and 0 <= column < columns):
            return None
        label = int(raster.labels[row, column])
        if label == OUTSIDE:
            return None
        if label >= 0:
            return str(self.codes[label])
        hits = self._tree.query(shapely.Point(lon, lat), predicate="intersects")
        return str(self.codes[hits.min()]) if len(hits) else None

    def locate_many(self, lons: ArrayLike, lats: ArrayLike) -> NDArray[np.object_]:
        """Codes (None outside every grid) of many points at once, in the input order."""
        lon_array = np.asarray(lons, dtype=np.float64).ravel()
        lat_array = np.asarray(lats, dtype=np.float64).ravel()
        if lon_array.shape != lat_array.shape:
            raise ValueError("lons and lats must have the same length")
        indices = self._grid_indices(lon_array, lat_array)
        result: NDArray[np.object_] = self._codes_or_none[indices]
        return result

    def _grid_indices(
        self, lons: NDArray[np.float64], lats: NDArray[np.float64]
    ) -> NDArray[np.int64]:
        """Grid index per point; len(codes) for points outside every grid."""
        none = len(self.codes)
        indices = np.full(len(lons), none, dtype=np.int64)
        if self._raster is None or not len(lons):
            return indices
        raster = self._raster
        rows, columns = raster.labels.shape
        with np.errstate(invalid="ignore"):
            column = np.floor((lons - raster.min_lon) / raster.cell)
            row = np.floor((lats - raster.min_lat) / raster.cell)
            inside = (column >= 0) & (column < columns) & (row >= 0) & (row < rows)
        labels = np.full(len(lons), OUTSIDE, dtype=np.int64)
        labels[inside] = raster.labels[row[inside].astype(np.intp), column[inside].astype(np.intp)]
        known = labels >= 0
        indices[known] = labels[known]
        unknown = np.flatnonzero(labels == UNKNOWN)
        if len(unknown):
            indices[unknown] = self._exact_indices(lons[unknown], lats[unknown])
        return indices

    def _exact_indices(
        self, lons: NDArray[np.float64], lats: NDArray[np.float64]
    ) -> NDArray[np.int64]:
        """Grid index per point by exact geometry (lowest index on shared edges)."""
        none = len(self.codes)
        best = np.full(len(lons), none, dtype=np.int64)
        points = shapely.points(lons, lats)
        point_index, grid_index = self._tree.query(points, predicate="intersects")
        np.minimum.at(best, point_index, grid_index)
        return best

    # ------------------------------------------------------------------ raster

    def _build_raster(self) -> _Raster:
        bounds = shapely.bounds(self.geometries)
        min_lon, min_lat = bounds[:, 0].min(), bounds[:, 1].min()
        max_lon, max_lat = bounds[:, 2].max(), bounds[:, 3].max()
        typical_side = float(
            np.median(np.sqrt((bounds[:, 2] - bounds[:, 0]) * (bounds[:, 3] - bounds[:, 1])))
        )
        cell = max(
            typical_side / CELLS_PER_GRID,
            math.sqrt((max_lon - min_lon) * (max_lat - min_lat) / MAX_RASTER_CELLS),
        )
        # One spare cell on each side keeps every boundary inside the raster.
        min_lon -= cell
        min_lat -= cell
        columns = math.ceil((max_lon - min_lon) / cell) + 2
        rows = math.ceil((max_lat - min_lat) / cell) + 2
        while rows * columns > MAX_RASTER_CELLS * 1.1:
            cell *= 1.05
            columns = math.ceil((max_lon - min_lon) / cell) + 2
            rows = math.ceil((max_lat - min_lat) / cell) + 2

        unknown = self._boundary_cells(rows, columns, min_lon, min_lat, cell)
        labels = self._label_free_cells(unknown, min_lon, min_lat, cell)
        return _Raster(labels=labels, min_lon=float(min_lon), min_lat=float(min_lat), cell=cell)

    def _boundary_cells(
        self, rows: int, columns: int, min_lon: float, min_lat: float, cell: float
    ) -> NDArray[np.bool_]:
        """Cells that some boundary passes through or near (a superset is harmless)."""
        rings = shapely.get_rings(shapely.get_parts(self.geometries))
        # Pieces no longer than half a cell span at most two cells along each axis, so
        # marking the cells of their (widened) bounding box corners covers them.
        dense = shapely.segmentize(rings, max_segment_length=cell / 2)
        coordinates, ring_index = shapely.get_coordinates(dense, return_index=True)
        same_ring = ring_index[:-1] == ring_index[1:]
        start, end = coordinates[:-1][same_ring], coordinates[1:][same_ring]
        low = np.minimum(start, end) - BOUNDARY_MARGIN_DEG
        high = np.maximum(start, end) + BOUNDARY_MARGIN_DEG
        column_low = np.clip(np.floor((low[:, 0] - min_lon) / cell).astype(np.intp), 0, columns - 1)
        column_high = np.clip(
            np.floor((high[:, 0] - min_lon) / cell).astype(np.intp), 0, columns - 1
        )
        row_low = np.clip(np.floor((low[:, 1] - min_lat) / cell).astype(np.intp), 0, rows - 1)
        row_high = np.clip(np.floor((high[:, 1] - min_lat) / cell).astype(np.intp), 0, rows - 1)
        unknown = np.zeros((rows, columns), dtype=np.bool_)
        for row in (row_low, row_high):
            for column in (column_low, column_high):
                unknown[row, column] = True
        return unknown

    def _label_free_cells(
        self, unknown: NDArray[np.bool_], min_lon: float, min_lat: float, cell: float
    ) -> NDArray[np.int32]:
        """Label every cell no boundary touches with the grid holding it (or OUTSIDE).

        Two free cells sharing an edge lie in the same grids (their union is connected and
        crosses no boundary). So a run of free cells along a row shares one label, and a run
        with a free cell right above one of its cells takes the label of the run above. Only
        the runs with nothing free above (about one per region) need an exact test.
        """
        rows, columns = unknown.shape
        free = ~unknown
        previous_free = np.zeros_like(free)
        previous_free[:, 1:] = free[:, :-1]
        starts = (free & ~previous_free).ravel()
        run_starts = np.flatnonzero(starts)
        run_count = len(run_starts)
        run_of_cell = np.cumsum(starts) - 1

        # The run above each run (through its first cell with a free cell above), or itself.
        free_above = np.zeros_like(free)
        free_above[1:] = free[1:] & free[:-1]
        linked_cells = np.flatnonzero(free_above.ravel())
        linked_runs, first = np.unique(run_of_cell[linked_cells], return_index=True)
        above = np.arange(run_count)
        above[linked_runs] = run_of_cell[linked_cells[first] - columns]
        # Pointer jumping: after log2(rows) rounds every run points at its topmost run.
        while True:
            jumped = above[above]
            if np.array_equal(jumped, above):
                break
            above = jumped

        roots = np.flatnonzero(above == np.arange(run_count))
        root_rows, root_columns = np.divmod(run_starts[roots], columns)
        root_labels = self._exact_indices(
            min_lon + (root_columns + 0.5) * cell, min_lat + (root_rows + 0.5) * cell
        )
        root_labels[root_labels == len(self.codes)] = OUTSIDE
        run_labels = np.empty(run_count, dtype=np.int64)
        run_labels[roots] = root_labels
        run_labels = run_labels[above]

        flat_free = free.ravel()
        labels = np.full(rows * columns, UNKNOWN, dtype=np.int32)
        labels[flat_free] = run_labels[run_of_cell[flat_free]]
        return labels.reshape(rows, columns)


class LocatorCache:
    """One locator per process, rebuilt when the territory revision changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locator: Locator | None = None
        self._checked_at = float("-inf")

    def fresh_within(self, seconds: float) -> Locator | None:
        """The locator if its revision was checked less than ``seconds`` ago, else None."""
        if self._locator is not None and time.monotonic() - self._checked_at < seconds:
            return self._locator
        return None

    def get(self, session: Session) -> Locator:
        """The locator for the database's current territory (one one-row query if fresh)."""
        revision = repository.territory_revision(session)
        locator = self._locator
        if locator is not None and locator.revision == revision:
            self._checked_at = time.monotonic()
            return locator
        with self._lock:
            locator = self._locator
            if locator is None or locator.revision != revision:
                locator = Locator.from_session(session)
                self._locator = locator
            self._checked_at = time.monotonic()
            return locator
