"""The rules of the territory: importing boundaries, reading units, locating points."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Row
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.kit.errors import NotFound, ValidationFailed
from citygrid.kit.i18n import _, localised
from citygrid.kit.models import utcnow
from citygrid.territory import geojson, repository
from citygrid.territory.geojson import LEVEL_ORDER, PARENT_LEVEL, ParsedFeature, feature_error
from citygrid.territory.locator import Locator
from citygrid.territory.models import CODE_LENGTH, Level, TerritorialUnit
from citygrid.territory.schemas import (
    GridFeature,
    GridFeatureCollection,
    GridFeatureProperties,
    ImportReport,
    LocatedUnit,
    LocateRead,
    UnitDetail,
    UnitRead,
    UnitRef,
)

logger = logging.getLogger("citygrid.territory")

CONTAINMENT_TOLERANCE_M = 1.0
"""A unit may stick out of its parent by up to this many metres (digitising noise)."""

OVERLAP_TOLERANCE_M2 = 1.0
"""Two grids may share up to this many square metres (slivers along a shared edge)."""

SLIVER_WIDTH_M = 0.001
"""Overlaps thinner than this (a millimetre) are digitising noise and never counted."""

# The levels checked to lie inside their parent. Districts are not checked against the
# city: a city's outline is often drawn coarser than its districts'.
CONTAINED_LEVELS = (Level.STREET, Level.COMMUNITY, Level.GRID)


# ============================================================================ import


@dataclass(slots=True)
class _Stored:
    """What the database holds for one code."""

    level: Level
    parent_code: str | None
    name_zh: str
    name_en: str
    geometry: str


def import_feature_collection(
    session: Session, actor: Actor, *, collection: dict[str, Any], replace: bool = False
) -> ImportReport:
    """Validate a GeoJSON FeatureCollection of units as a whole, then create or update them.

    Nothing is written unless every feature passes; otherwise ValidationFailed lists the
    errors as ``{"feature", "code", "field", "reason"}`` (``feature`` is the 0-based index in
    ``features``, None for the file as a whole; at most ``geojson.MAX_ERRORS`` are listed).
    A unit whose code is already stored is updated (names, boundary); an identical one is
    counted as unchanged. Units are never deleted by an import (registry rows hang on them).

    ``replace=False`` refuses to move a stored unit to another parent (only a district's
    parent can differ: its city); ``replace=True`` allows it. A unit's level never changes.
    Tolerances: a unit may stick out of its parent by ``CONTAINMENT_TOLERANCE_M`` (1 m);
    two grids may overlap by ``OVERLAP_TOLERANCE_M2`` (1 m2). The territory revision is
    bumped when anything changed, so every process rebuilds its locator.
    """
    session.flush()
    features, errors = geojson.parse_features(collection)
    if errors and not features:
        raise geojson.collection_rejected(errors)
    named_in_file = _codes_named_in(collection)

    by_code: dict[str, ParsedFeature] = {}
    for feature in features:
        first = by_code.get(feature.code)
        if first is not None:
            reason = _("duplicate code: feature {index} has it too").format(index=first.index)
            errors.append(feature_error(feature.index, feature.code, "code", reason))
        else:
            by_code[feature.code] = feature

    stored = _load_stored(session, by_code)
    parents = _resolve_parents(by_code, stored, named_in_file, replace, errors)
    _check_geometries(session, by_code, parents, stored, errors)
    if errors:
        errors.sort(key=lambda error: (error["feature"] is not None, error["feature"] or 0))
        raise geojson.collection_rejected(errors)

    created, updated, unchanged = _write(session, list(by_code.values()), parents, stored)
    revision = repository.territory_revision(session)
    if created or updated:
        revision = repository.bump_territory_revision(session)
    session.flush()
    logger.info(
        "territory import by %s: %d created, %d updated, %d unchanged, revision %d",
        actor.name,
        created,
        updated,
        unchanged,
        revision,
    )
    return ImportReport(created=created, updated=updated, unchanged=unchanged, revision=revision)


def _codes_named_in(collection: dict[str, Any]) -> set[str]:
    """Every code string in the file, rejected features included (to avoid cascades)."""
    codes: set[str] = set()
    for raw in collection.get("features") or ():
        properties = raw.get("properties") if isinstance(raw, dict) else None
        if isinstance(properties, dict) and isinstance(properties.get("code"), str):
            codes.add(properties["code"].strip())
    return codes


def _load_stored(session: Session, by_code: dict[str, ParsedFeature]) -> dict[str, _Stored]:
    wanted = set(by_code)
    for feature in by_code.values():
        implied = geojson.prefix_parent(feature.code, feature.level)
        wanted.update(code for code in (implied, feature.parent_code) if code)
    stored = {
        unit.code: _Stored(
            level=Level(unit.level),
            parent_code=unit.parent_code,
            name_zh=unit.name_zh,
            name_en=unit.name_en,
            geometry=unit.geometry,
        )
        for unit in repository.units_by_codes(session, wanted)
    }
    for city in repository.units_of_level(session, Level.CITY):
        stored.setdefault(
            city.code,
            _Stored(Level.CITY, None, city.name_zh, city.name_en, geometry=""),
        )
    return stored


def _district_parent(code: str, cities: list[str]) -> str | None:
    """The city whose code prefix the district's code starts with (the longest match)."""
    matches = [
        city for city in cities if city != code and code.startswith(geojson.city_prefix(city))
    ]
    return max(matches, key=lambda city: len(geojson.city_prefix(city)), default=None)


def _resolve_parents(
    by_code: dict[str, ParsedFeature],
    stored: dict[str, _Stored],
    named_in_file: set[str],
    replace: bool,
    errors: list[dict[str, Any]],
) -> dict[str, str | None]:
    """Each unit's parent code; checks codes against parents, parents' existence and level."""
    cities = sorted(
        {code for code, feature in by_code.items() if feature.level is Level.CITY}
        | {code for code, unit in stored.items() if unit.level is Level.CITY}
    )
    parents: dict[str, str | None] = {}
    for code, feature in by_code.items():

        def reject(field: str, reason: str, feature: ParsedFeature = feature) -> None:
            errors.append(feature_error(feature.index, feature.code, field, reason))

        expected_level = PARENT_LEVEL[feature.level]
        parent: str | None
        if expected_level is None:
            parent = None
        elif feature.level is Level.DISTRICT:
            parent = feature.parent_code or _district_parent(code, cities)
            if feature.parent_code is not None and not code.startswith(
                geojson.city_prefix(feature.parent_code)
            ):
                reason = _("code {code} is not under its parent {parent}").format(
                    code=code, parent=feature.parent_code
                )
                reject("parent_code", reason)
                continue
        else:
            parent = geojson.prefix_parent(code, feature.level)
            if feature.parent_code is not None and feature.parent_code != parent:
                reason = _(
                    "code {code} is not under its parent {parent}: "
                    "a {level} code starts with its parent's code"
                ).format(code=code, parent=feature.parent_code, level=feature.level.value)
                reject("parent_code", reason)
                continue
        parents[code] = parent

        if parent is not None:
            parent_level = (
                by_code[parent].level
                if parent in by_code
                else stored[parent].level
                if parent in stored
                else None
            )
            if parent_level is None and parent not in named_in_file:
                reason = _("the parent {parent} is neither in the file nor stored").format(
                    parent=parent
                )
                reject("parent_code", reason)
            elif (
                parent_level is not None
                and expected_level is not None
                and parent_level is not expected_level
            ):
                reason = _("the parent {parent} is a {level}, not a {expected}").format(
                    parent=parent, level=parent_level.value, expected=expected_level.value
                )
                reject("parent_code", reason)

        before = stored.get(code)
        if before is not None and before.level is not feature.level:
            reason = _("the unit is stored as a {level}; a unit's level cannot change").format(
                level=before.level.value
            )
            reject("level", reason)
        elif before is not None and before.parent_code != parent and not replace:
            reason = _(
                "the unit is stored under {old}; import with replace to move it under {new}"
            ).format(old=before.parent_code or "-", new=parent or "-")
            reject("parent_code", reason)
    return parents


def _mean_latitude(geometries: list[BaseGeometry]) -> float:
    bounds = shapely.bounds(np.asarray(geometries, dtype=object))
    return float(np.mean((bounds[:, 1] + bounds[:, 3]) / 2))


def _check_geometries(
    session: Session,
    by_code: dict[str, ParsedFeature],
    parents: dict[str, str | None],
    stored: dict[str, _Stored],
    errors: list[dict[str, Any]],
) -> None:
    """Containment in parents (both ways: new children and stored ones) and grid overlaps."""
    with_geometry = [feature for feature in by_code.values() if feature.geometry is not None]
    if not with_geometry:
        return
    standard_lat = _mean_latitude([feature.geometry for feature in with_geometry])

    def metres(geometries: list[BaseGeometry]) -> NDArray[np.object_]:
        return geojson.project_to_metres(np.asarray(geometries, dtype=object), standard_lat)

    _check_inside_parents(by_code, parents, stored, with_geometry, metres, errors)
    _check_stored_children(session, by_code, stored, metres, errors)
    _check_grid_overlaps(session, by_code, with_geometry, metres, errors)


def _check_inside_parents(
    by_code: dict[str, ParsedFeature],
    parents: dict[str, str | None],
    stored: dict[str, _Stored],
    with_geometry: list[ParsedFeature],
    metres: Any,
    errors: list[dict[str, Any]],
) -> None:
    children: list[tuple[ParsedFeature, str, Level]] = []
    parent_geometries: dict[str, BaseGeometry] = {}
    for feature in with_geometry:
        parent = parents.get(feature.code)
        parent_level = PARENT_LEVEL[feature.level]
        if feature.level not in CONTAINED_LEVELS or parent is None or parent_level is None:
            continue
        if parent not in parent_geometries:
            geometry = _geometry_of(parent, by_code, stored)
            if geometry is None:
                continue
            parent_geometries[parent] = geometry
        children.append((feature, parent, parent_level))
    if not children:
        return
    parent_codes = list(parent_geometries)
    parent_shapes = metres([parent_geometries[code] for code in parent_codes])
    widened = shapely.buffer(parent_shapes, CONTAINMENT_TOLERANCE_M)
    shapely.prepare(widened)
    position = {code: index for index, code in enumerate(parent_codes)}
    parent_index = np.array([position[parent] for _child, parent, _level in children])
    child_shapes = metres([child.geometry for child, _parent, _level in children])
    inside = shapely.covers(widened[parent_index], child_shapes)
    for number in np.flatnonzero(~inside):
        child, parent, parent_level = children[number]
        outside_m2 = shapely.area(
            shapely.difference(child_shapes[number], parent_shapes[parent_index[number]])
        )
        reason = _(
            "not inside its {level} {parent}: {area} m2 lies outside (tolerance {tolerance} m)"
        ).format(
            level=parent_level.value,
            parent=parent,
            area=round(float(outside_m2), 1),
            tolerance=CONTAINMENT_TOLERANCE_M,
        )
        errors.append(feature_error(child.index, child.code, "geometry", reason))


def _geometry_of(
    code: str, by_code: dict[str, ParsedFeature], stored: dict[str, _Stored]
) -> BaseGeometry | None:
    if code in by_code:
        return by_code[code].geometry
    unit = stored.get(code)
    if unit is None or not unit.geometry:
        return None
    geometry: BaseGeometry = shapely.from_geojson(unit.geometry)
    return geometry


def _check_stored_children(
    session: Session,
    by_code: dict[str, ParsedFeature],
    stored: dict[str, _Stored],
    metres: Any,
    errors: list[dict[str, Any]],
) -> None:
    """A new boundary must still hold the stored children that the file does not bring."""
    reshaped = [
        feature
        for code, feature in by_code.items()
        if feature.geometry is not None
        and code in stored
        and stored[code].geometry != feature.geometry_json
        and feature.level in (Level.DISTRICT, Level.STREET, Level.COMMUNITY)
    ]
    if not reshaped:
        return
    rows = [
        row
        for row in repository.children_geometries(session, [f.code for f in reshaped])
        if row.code not in by_code and Level(row.level) in CONTAINED_LEVELS
    ]
    if not rows:
        return
    parent_of = {feature.code: feature for feature in reshaped}
    widened = shapely.buffer(
        metres([parent_of[row.parent_code].geometry for row in rows]), CONTAINMENT_TOLERANCE_M
    )
    child_shapes = metres(list(shapely.from_geojson([row.geometry for row in rows])))
    inside = shapely.covers(widened, child_shapes)
    for number in np.flatnonzero(~inside):
        row = rows[number]
        parent = parent_of[row.parent_code]
        reason = _("the new boundary leaves the stored {level} {child} outside").format(
            level=Level(row.level).value, child=row.code
        )
        errors.append(feature_error(parent.index, parent.code, "geometry", reason))


def _check_grid_overlaps(
    session: Session,
    by_code: dict[str, ParsedFeature],
    with_geometry: list[ParsedFeature],
    metres: Any,
    errors: list[dict[str, Any]],
) -> None:
    """No two grids (in the file, or one in the file and one stored) may overlap."""
    grids = [feature for feature in with_geometry if feature.level is Level.GRID]
    if not grids:
        return
    file_shapes = metres([grid.geometry for grid in grids])
    min_lon, min_lat, max_lon, max_lat = shapely.total_bounds(
        np.asarray([grid.geometry for grid in grids], dtype=object)
    )
    others = [
        code
        for code in repository.grid_codes_in_bbox(session, min_lon, min_lat, max_lon, max_lat)
        if code not in by_code
    ]
    other_rows = repository.units_by_codes(session, others)
    other_codes = [unit.code for unit in other_rows]
    other_shapes = (
        metres(list(shapely.from_geojson([unit.geometry for unit in other_rows])))
        if other_rows
        else np.array([], dtype=object)
    )
    # File grids first, so a tree index below len(grids) is a file grid.
    all_shapes = np.concatenate([file_shapes, other_shapes])
    # Candidates: one grid, eroded by a millimetre, still meets the other. Touching grids
    # drop out cheaply (a "touches" query costs a full relate per pair).
    eroded = shapely.buffer(all_shapes, -SLIVER_WIDTH_M)
    eroded_file = eroded[: len(grids)]
    first_way = shapely.STRtree(all_shapes).query(eroded_file, predicate="intersects")
    other_way = shapely.STRtree(eroded).query(file_shapes, predicate="intersects")
    pairs = np.unique(np.sort(np.concatenate([first_way, other_way], axis=1), axis=0), axis=1)
    left, right = pairs[0], pairs[1]
    keep = left != right
    left, right = left[keep], right[keep]
    overlap_m2 = shapely.area(shapely.intersection(all_shapes[left], all_shapes[right]))
    for first, second, area in zip(left, right, overlap_m2, strict=True):
        if area <= OVERLAP_TOLERANCE_M2:
            continue
        other = grids[second].code if second < len(grids) else other_codes[second - len(grids)]
        reason = _("overlaps grid {other} by {area} m2 (tolerance {tolerance} m2)").format(
            other=other, area=round(float(area), 1), tolerance=OVERLAP_TOLERANCE_M2
        )
        grid = grids[first]  # a file grid: np.sort put the lower index first
        errors.append(feature_error(grid.index, grid.code, "geometry", reason))


def _write(
    session: Session,
    features: list[ParsedFeature],
    parents: dict[str, str | None],
    stored: dict[str, _Stored],
) -> tuple[int, int, int]:
    """Insert new units (parents first) and update changed ones, in executemany batches."""
    geometries = np.asarray([feature.geometry for feature in features], dtype=object)
    areas = geojson.areas_m2(geometries)
    centroids = shapely.get_coordinates(shapely.centroid(geometries))
    bounds = shapely.bounds(geometries)
    now = utcnow()
    inserts: dict[Level, list[dict[str, Any]]] = defaultdict(list)
    updates: list[dict[str, Any]] = []
    unchanged = 0
    for number, feature in enumerate(features):
        before = stored.get(feature.code)
        parent = parents[feature.code]
        if (
            before is not None
            and before.geometry == feature.geometry_json
            and before.parent_code == parent
            and before.name_zh == feature.name_zh
            and before.name_en == feature.name_en
        ):
            unchanged += 1
            continue
        row = {
            "code": feature.code,
            "level": feature.level,
            "parent_code": parent,
            "name_zh": feature.name_zh,
            "name_en": feature.name_en,
            "geometry": feature.geometry_json,
            "area_m2": float(areas[number]),
            "centroid_lon": float(centroids[number, 0]),
            "centroid_lat": float(centroids[number, 1]),
            "min_lon": float(bounds[number, 0]),
            "min_lat": float(bounds[number, 1]),
            "max_lon": float(bounds[number, 2]),
            "max_lat": float(bounds[number, 3]),
            "updated_at": now,
        }
        if before is None:
            inserts[feature.level].append({**row, "created_at": now})
        else:
            updates.append(row)
    for level in LEVEL_ORDER:
        repository.insert_units(session, inserts[level])
    repository.update_units(session, updates)
    if updates:
        # The bulk UPDATE bypasses the identity map: drop any stale copies held there.
        for instance in list(session.identity_map.values()):
            if isinstance(instance, TerritorialUnit):
                session.expire(instance)
    created = sum(len(rows) for rows in inserts.values())
    return created, len(updates), unchanged


# ============================================================================ reading


def parse_code(code: str) -> str:
    """A territorial code checked for shape (6, 9, 12 or 15 digits); ValidationFailed if not."""
    if not (code.isascii() and code.isdigit() and len(code) in (6, 9, 12, 15)):
        raise ValidationFailed.one("code", _("a territorial code has 6, 9, 12 or 15 digits"))
    return code


def _unit_or_404(session: Session, code: str) -> TerritorialUnit:
    unit = repository.get_unit(session, parse_code(code))
    if unit is None:
        raise NotFound(
            _("No territorial unit has the code {code}.").format(code=code),
            details={"code": code},
        )
    return unit


def _unit_read(unit: TerritorialUnit) -> UnitRead:
    return UnitRead(
        code=unit.code,
        level=Level(unit.level),
        parent_code=unit.parent_code,
        name_zh=unit.name_zh,
        name_en=unit.name_en,
        area_m2=unit.area_m2,
        centroid=(unit.centroid_lon, unit.centroid_lat),
        bbox=(unit.min_lon, unit.min_lat, unit.max_lon, unit.max_lat),
    )


def _ref(row: Row[Any] | TerritorialUnit) -> UnitRef:
    return UnitRef(code=row.code, level=Level(row.level), name_zh=row.name_zh, name_en=row.name_en)


def get_unit(session: Session, *, code: str) -> UnitRead:
    """A unit with its measures; NotFound naming the code if there is none."""
    return _unit_read(_unit_or_404(session, code))


def parent_chain(session: Session, *, code: str) -> list[UnitRef]:
    """The units above a unit, from the city (or topmost unit) down to its direct parent."""
    chain: list[UnitRef] = []
    parent_code = _unit_or_404(session, code).parent_code
    while parent_code is not None and len(chain) < len(LEVEL_ORDER):
        parent = repository.get_unit(session, parent_code)
        if parent is None:
            break
        chain.append(_ref(parent))
        parent_code = parent.parent_code
    chain.reverse()
    return chain


def children(session: Session, *, code: str) -> list[UnitRef]:
    """A unit's direct children, by code."""
    _unit_or_404(session, code)
    return [_ref(row) for row in repository.children(session, code)]


def unit_detail(session: Session, *, code: str) -> UnitDetail:
    """A unit, its parent chain (city first) and its children: no geometry."""
    unit = get_unit(session, code=code)
    return UnitDetail(
        **unit.model_dump(),
        parent_chain=parent_chain(session, code=code),
        children=children(session, code=code),
    )


def _scope_prefix(unit: TerritorialUnit) -> str:
    """The prefix of every grid code under a unit (a city's districts share 4401 of 440100)."""
    if Level(unit.level) is Level.CITY:
        return geojson.city_prefix(unit.code)
    return unit.code


def grids_under(session: Session, *, code: str) -> list[UnitRef]:
    """The grids under a unit, by code (a grid's own code gives itself)."""
    unit = _unit_or_404(session, code)
    return [_ref(row) for row in repository.grid_refs_under(session, _scope_prefix(unit))]


def territory_revision(session: Session) -> int:
    """The territory revision: bumped by every change of territory (0 before any import)."""
    return repository.territory_revision(session)


def unit_features(
    session: Session, *, code: str, level: Level = Level.GRID
) -> GridFeatureCollection:
    """The units of ``level`` under a unit as GeoJSON features with the registry's counts
    (summed over their grids); ``name`` is in the current locale."""
    from citygrid.registry.service import counts_by_grid

    unit = _unit_or_404(session, code)
    unit_level = Level(unit.level)
    if LEVEL_ORDER.index(level) < LEVEL_ORDER.index(unit_level):
        raise ValidationFailed.one(
            "level",
            _("{code} is a {unit_level}: ask for its own level or a lower one").format(
                code=code, unit_level=unit_level.value
            ),
        )
    prefix = _scope_prefix(unit)
    rows = repository.units_under(session, prefix, level)
    if level is unit_level:
        rows = [row for row in rows if row.code == unit.code]
    # The registry resolves a unit code to its grids (a city: 440100 -> 4401...).
    counts = counts_by_grid(session, code_prefix=unit.code)
    length = CODE_LENGTH[level]
    totals: dict[str, dict[str, Any]] = {}
    for grid_code, grid_counts in counts.items():
        total = totals.setdefault(
            grid_code[:length],
            {"buildings": 0, "housing_units": 0, "households": 0, "residents": 0, "by_class": {}},
        )
        total["buildings"] += grid_counts.buildings
        total["housing_units"] += grid_counts.housing_units
        total["households"] += grid_counts.households
        total["residents"] += grid_counts.residents
        for slug, count in grid_counts.components.items():
            total["by_class"][slug] = total["by_class"].get(slug, 0) + count
    features = []
    for row in rows:
        total = totals.get(row.code, {})
        by_class: dict[str, int] = total.get("by_class", {})
        properties = GridFeatureProperties(
            code=row.code,
            level=level,
            name=localised(row.name_zh, row.name_en),
            name_zh=row.name_zh,
            name_en=row.name_en,
            buildings=total.get("buildings", 0),
            housing_units=total.get("housing_units", 0),
            households=total.get("households", 0),
            residents=total.get("residents", 0),
            components=sum(by_class.values()),
            components_by_class=by_class,
        )
        features.append(
            GridFeature(id=row.code, properties=properties, geometry=json.loads(row.geometry))
        )
    return GridFeatureCollection(features=features)


# ============================================================================ locating


def _located(locator: Locator, code: str | None) -> LocatedUnit | None:
    entry = locator.unit(code) if code else None
    if entry is None:
        return None
    return LocatedUnit(code=entry.code, name_zh=entry.name_zh, name_en=entry.name_en)


def locate_point(locator: Locator, *, lon: float, lat: float) -> LocateRead:
    """The grid holding a point and the units above it; NotFound outside every grid."""
    if not (-180 <= lon <= 180):
        raise ValidationFailed.one("lon", _("longitude must be between -180 and 180"))
    if not (-90 <= lat <= 90):
        raise ValidationFailed.one("lat", _("latitude must be between -90 and 90"))
    grid_code = locator.locate(lon, lat)
    if grid_code is None:
        raise NotFound(_("The point is outside the city's grids."))
    grid = locator.unit(grid_code)
    community = _located(locator, grid_code[:12])
    street = _located(locator, grid_code[:9])
    district = _located(locator, grid_code[:6])
    if grid is None or community is None or street is None or district is None:
        # The grids and the units above them are read together; a gap is a broken import.
        raise NotFound(_("The point is outside the city's grids."))
    district_entry = locator.unit(district.code)
    city = _located(locator, district_entry.parent_code if district_entry else None)
    return LocateRead(
        grid=LocatedUnit(code=grid.code, name_zh=grid.name_zh, name_en=grid.name_en),
        community=community,
        street=street,
        district=district,
        city=city,
    )


def unit_names(session: Session, *, codes: Iterable[str]) -> dict[str, UnitRef]:
    """The stored units among ``codes``, by code (names for tables and exports)."""
    return {row.code: _ref(row) for row in repository.unit_refs_by_codes(session, codes)}


def units_at(session: Session, *, levels: Iterable[Level]) -> list[UnitRef]:
    """Every unit of the given levels, by code (a city and its districts for a picker)."""
    refs = [_ref(row) for level in levels for row in repository.units_of_level(session, level)]
    return sorted(refs, key=lambda ref: ref.code)
