"""Reading territory GeoJSON: per-feature checks, codes, and geodesic measures.

Everything here is pure (no database): :func:`parse_features` turns a FeatureCollection into
:class:`ParsedFeature` records plus a list of errors; the rules that need the stored
territory (parents, containment, overlaps) live in ``service.py``.

Measures. Areas are computed in the Lambert cylindrical equal-area projection of the WGS 84
ellipsoid, which is exactly area-preserving everywhere, so the only error is treating each
polygon edge as straight in that projection rather than as a geodesic (negligible for the
edges of city boundaries: well under 0.1 %). The same projection with its standard parallel
at the territory's mean latitude is true to scale along that parallel, so within a city
(a degree or so of latitude) distances in it are within about 1 % of the truth: good enough
for the one-metre containment tolerance and the overlap threshold.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray
from shapely.geometry.base import BaseGeometry

from citygrid.kit.errors import ValidationFailed
from citygrid.kit.i18n import _
from citygrid.territory.models import CODE_LENGTH, Level

# WGS 84 ellipsoid.
WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)
WGS84_E = math.sqrt(WGS84_E2)

MAX_ERRORS = 100
"""At most this many errors are reported for one file (the count of all is in the message)."""

NAME_MAX_LENGTH = {"name_zh": 100, "name_en": 200}

# The level whose units may be a unit's parent.
PARENT_LEVEL: dict[Level, Level | None] = {
    Level.CITY: None,
    Level.DISTRICT: Level.CITY,
    Level.STREET: Level.DISTRICT,
    Level.COMMUNITY: Level.STREET,
    Level.GRID: Level.COMMUNITY,
}

LEVEL_ORDER = (Level.CITY, Level.DISTRICT, Level.STREET, Level.COMMUNITY, Level.GRID)
LEVEL_VALUES = frozenset(level.value for level in Level)


def feature_error(index: int | None, code: str | None, field: str, reason: str) -> dict[str, Any]:
    """One error of an import: which feature (index in the file), its code, field and reason."""
    return {"feature": index, "code": code, "field": field, "reason": reason}


def collection_rejected(errors: list[dict[str, Any]]) -> ValidationFailed:
    """The error raised for a rejected file: every error (up to MAX_ERRORS) in details."""
    shown = errors[:MAX_ERRORS]
    if len(errors) > MAX_ERRORS:
        message = _("The territory file was rejected: {count} errors (the first {shown} listed).")
    else:
        message = _("The territory file was rejected: {count} errors.")
    return ValidationFailed(message.format(count=len(errors), shown=len(shown)), details=shown)


def load_collection(data: str | bytes) -> dict[str, Any]:
    """Parse the text of a GeoJSON file; ValidationFailed (field ``file``) if it is not JSON."""
    try:
        document = json.loads(data)
    except UnicodeDecodeError:
        raise collection_rejected(
            [feature_error(None, None, "file", _("the file is not UTF-8 text"))]
        ) from None
    except json.JSONDecodeError as exc:
        reason = _("not valid JSON: {problem} at line {line}, column {column}").format(
            problem=exc.msg, line=exc.lineno, column=exc.colno
        )
        raise collection_rejected([feature_error(None, None, "file", reason)]) from None
    if not isinstance(document, dict):
        raise collection_rejected(
            [feature_error(None, None, "type", _("the file is not a GeoJSON FeatureCollection"))]
        )
    return document


# ---------------------------------------------------------------------------- codes


def city_prefix(city_code: str) -> str:
    """The part of a city's code that its districts' codes start with (440100 -> 4401)."""
    prefix = city_code
    while prefix.endswith("00") and len(prefix) > 2:
        prefix = prefix[:-2]
    return prefix


def code_problem(code: str, level: Level) -> str | None:
    """Why ``code`` is not a valid code of ``level``, or None if it is."""
    length = CODE_LENGTH[level]
    if not (code.isascii() and code.isdigit()):
        return _("a code is made of digits only")
    if len(code) != length:
        return _("a {level} code has {length} digits, this one has {actual}").format(
            level=level.value, length=length, actual=len(code)
        )
    if level is Level.CITY and not code.endswith("00"):
        return _("a city code (GB/T 2260) ends in 00")
    return None


def prefix_parent(code: str, level: Level) -> str | None:
    """The parent code implied by a code's prefix (None for a city or district)."""
    if level in (Level.STREET, Level.COMMUNITY, Level.GRID):
        return code[: CODE_LENGTH[level] - 3]
    return None


def level_of_code(code: str) -> Level | None:
    """The level a well-formed code belongs to (a 6-digit code ending in 00 is a city)."""
    if not (code.isascii() and code.isdigit()):
        return None
    if len(code) == 6:
        return Level.CITY if code.endswith("00") else Level.DISTRICT
    return {9: Level.STREET, 12: Level.COMMUNITY, 15: Level.GRID}.get(len(code))


# ---------------------------------------------------------------------------- measures


def _authalic_q(lat_radians: NDArray[np.float64]) -> NDArray[np.float64]:
    sin_lat = np.sin(lat_radians)
    e_sin = WGS84_E * sin_lat
    result: NDArray[np.float64] = (1 - WGS84_E2) * (
        sin_lat / (1 - e_sin * e_sin) - np.log((1 - e_sin) / (1 + e_sin)) / (2 * WGS84_E)
    )
    return result


def equal_area_projector(standard_lat: float) -> Any:
    """A function mapping (N, 2) lon/lat arrays to metres in the cylindrical equal-area
    projection of WGS 84 with the given standard parallel (true scale along it)."""
    phi = math.radians(standard_lat)
    k0 = math.cos(phi) / math.sqrt(1 - WGS84_E2 * math.sin(phi) ** 2)

    def project(lonlat: NDArray[np.float64]) -> NDArray[np.float64]:
        x = WGS84_A * k0 * np.radians(lonlat[:, 0])
        y = WGS84_A * _authalic_q(np.radians(lonlat[:, 1])) / (2 * k0)
        return np.column_stack((x, y))

    return project


def project_to_metres(geometries: NDArray[np.object_], standard_lat: float) -> NDArray[np.object_]:
    """Geometries (lon/lat) in metres, equal-area and true to scale near ``standard_lat``."""
    projected: NDArray[np.object_] = shapely.transform(
        geometries, equal_area_projector(standard_lat)
    )
    return projected


def areas_m2(geometries: NDArray[np.object_]) -> NDArray[np.float64]:
    """Ellipsoidal areas in square metres of lon/lat polygons."""
    result: NDArray[np.float64] = shapely.area(project_to_metres(geometries, 0.0))
    return result


def area_m2(geometry: BaseGeometry) -> float:
    """Ellipsoidal area in square metres of one lon/lat polygon."""
    return float(areas_m2(np.array([geometry], dtype=object))[0])


# ---------------------------------------------------------------------------- features


@dataclass(slots=True)
class ParsedFeature:
    """A feature whose properties passed the per-feature checks.

    ``geometry`` is None when the geometry was rejected (the properties are still used so
    that one bad polygon does not turn every child into an "unknown parent" error).
    """

    index: int
    code: str
    level: Level
    name_zh: str
    name_en: str
    parent_code: str | None
    geometry: BaseGeometry | None = None
    geometry_json: str = ""


def _text_property(
    properties: dict[str, Any], name: str, index: int, code: str | None
) -> tuple[str | None, dict[str, Any] | None]:
    value = properties.get(name)
    if value is None:
        return None, feature_error(index, code, name, _("missing"))
    if not isinstance(value, str):
        return None, feature_error(index, code, name, _("must be a string"))
    value = value.strip()
    if not value:
        return None, feature_error(index, code, name, _("must not be empty"))
    if len(value) > NAME_MAX_LENGTH[name]:
        reason = _("at most {length} characters").format(length=NAME_MAX_LENGTH[name])
        return None, feature_error(index, code, name, reason)
    return value, None


def _rings_of(geometry: dict[str, Any]) -> tuple[str, list[list[Any]]] | str:
    """(type, polygons as lists of rings), or the reason the structure is wrong."""
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind not in ("Polygon", "MultiPolygon"):
        return _("the geometry must be a Polygon or a MultiPolygon, not {kind}").format(
            kind=kind if isinstance(kind, str) else type(kind).__name__
        )
    if not isinstance(coordinates, list) or not coordinates:
        return _("the geometry has no coordinates")
    polygons = [coordinates] if kind == "Polygon" else coordinates
    for polygon in polygons:
        if not isinstance(polygon, list) or not polygon:
            return _("the coordinates are not a list of rings")
        for ring in polygon:
            if not isinstance(ring, list):
                return _("the coordinates are not a list of rings")
    return kind, polygons


def _ring_array(ring: list[Any], ring_number: int) -> NDArray[np.float64] | str:
    """A ring as an (N, 2) array, or the reason it is rejected."""
    malformed = _("ring {ring}: every position must be [longitude, latitude] numbers").format(
        ring=ring_number
    )
    try:
        raw = np.asarray(ring)
    except ValueError:  # ragged positions
        return malformed
    if raw.ndim != 2 or raw.shape[1] not in (2, 3) or raw.dtype.kind not in "iuf":
        return malformed
    array = raw[:, :2].astype(np.float64)
    if len(array) < 4:
        return _("ring {ring} has {count} positions; a ring needs at least 4").format(
            ring=ring_number, count=len(array)
        )
    if not np.isfinite(array).all():
        return _("ring {ring}: coordinates must be finite numbers").format(ring=ring_number)
    if (np.abs(array[:, 0]) > 180).any() or (np.abs(array[:, 1]) > 90).any():
        return _(
            "ring {ring}: coordinates out of range (longitude -180..180, latitude -90..90); "
            "positions must be [longitude, latitude] in WGS 84 degrees"
        ).format(ring=ring_number)
    if not np.array_equal(array[0], array[-1]):
        return _("ring {ring} is not closed: its first and last positions differ").format(
            ring=ring_number
        )
    return array


def build_geometry(raw: Any) -> tuple[BaseGeometry | None, str]:
    """A shapely (Multi)Polygon from GeoJSON and its stored text, before the validity check
    (see :func:`validity_problems`); or None and the reason the structure is rejected."""
    if raw is None:
        return None, _("missing")
    if not isinstance(raw, dict):
        return None, _("must be a GeoJSON geometry object")
    shape = _rings_of(raw)
    if isinstance(shape, str):
        return None, shape
    kind, polygons = shape
    parts = []
    stored_polygons = []
    ring_number = 0
    for polygon in polygons:
        arrays = []
        for ring in polygon:
            ring_number += 1
            array = _ring_array(ring, ring_number)
            if isinstance(array, str):
                return None, array
            arrays.append(array)
        parts.append(shapely.polygons(arrays[0], holes=arrays[1:] or None))
        stored_polygons.append([array.tolist() for array in arrays])
    geometry: BaseGeometry = parts[0] if kind == "Polygon" else shapely.multipolygons(parts)
    # Stored as given, less any altitude: [lon, lat] positions in WGS 84 degrees.
    coordinates = stored_polygons[0] if kind == "Polygon" else stored_polygons
    text = json.dumps({"type": kind, "coordinates": coordinates}, separators=(",", ":"))
    return geometry, text


def validity_problems(geometries: list[BaseGeometry]) -> list[str | None]:
    """Why each polygon is invalid (GEOS's reason, e.g. Self-intersection), or None."""
    array = np.asarray(geometries, dtype=object)
    valid = shapely.is_valid(array)
    areas = shapely.area(array)
    problems: list[str | None] = [None] * len(geometries)
    for number in np.flatnonzero(~valid | (areas <= 0)):
        if valid[number]:
            problems[number] = _("the polygon has no area")
        else:
            problems[number] = _("invalid polygon: {reason}").format(
                reason=shapely.is_valid_reason(array[number])
            )
    return problems


def parse_geometry(raw: Any) -> tuple[BaseGeometry | None, str | None]:
    """A valid shapely (Multi)Polygon from GeoJSON, or the reason it is rejected."""
    geometry, text_or_reason = build_geometry(raw)
    if geometry is None:
        return None, text_or_reason
    problem = validity_problems([geometry])[0]
    return (None, problem) if problem else (geometry, None)


def parse_features(
    collection: Any,
) -> tuple[list[ParsedFeature], list[dict[str, Any]]]:
    """Check the collection and each feature on its own; (features, errors).

    A feature with a bad code or level is left out of the features (nothing can be checked
    against it); one with only a bad geometry stays in, with ``geometry`` None.
    """
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        reason = _("the file is not a GeoJSON FeatureCollection")
        return [], [feature_error(None, None, "type", reason)]
    raw_features = collection.get("features")
    if not isinstance(raw_features, list):
        reason = _("a FeatureCollection needs a list of features")
        return [], [feature_error(None, None, "features", reason)]
    if not raw_features:
        return [], [feature_error(None, None, "features", _("the collection has no features"))]

    parsed: list[ParsedFeature] = []
    errors: list[dict[str, Any]] = []
    built: list[tuple[int, str | None, BaseGeometry]] = []
    for index, raw in enumerate(raw_features):
        feature, geometry = _parse_feature(index, raw, errors)
        if feature is not None:
            parsed.append(feature)
        if geometry is not None:
            built.append(geometry)
    # Validity in one vectorised pass (the slow part of checking 20,000 polygons), for
    # rejected features too, so that every error is reported at once.
    invalid: set[int] = set()
    problems = validity_problems([geometry for _index, _code, geometry in built])
    for (index, code, _geometry), problem in zip(built, problems, strict=True):
        if problem is not None:
            errors.append(feature_error(index, code, "geometry", problem))
            invalid.add(index)
    for feature in parsed:
        if feature.index in invalid:
            feature.geometry = None
            feature.geometry_json = ""
    return parsed, errors


def _parse_feature(
    index: int, raw: Any, errors: list[dict[str, Any]]
) -> tuple[ParsedFeature | None, tuple[int, str | None, BaseGeometry] | None]:
    """The feature if its properties pass, and its geometry (validity not yet checked)."""
    if not isinstance(raw, dict) or raw.get("type") != "Feature":
        errors.append(feature_error(index, None, "type", _("not a GeoJSON Feature")))
        return None, None
    properties = raw.get("properties")
    if not isinstance(properties, dict):
        errors.append(feature_error(index, None, "properties", _("missing")))
        return None, None
    before = len(errors)

    raw_code = properties.get("code")
    code: str | None = None
    if raw_code is None:
        errors.append(feature_error(index, None, "code", _("missing")))
    elif not isinstance(raw_code, str):
        errors.append(feature_error(index, None, "code", _("must be a string of digits")))
    else:
        code = raw_code.strip()

    raw_level = properties.get("level")
    level: Level | None = None
    if raw_level is None:
        errors.append(feature_error(index, code, "level", _("missing")))
    elif raw_level not in LEVEL_VALUES:
        reason = _("must be one of {levels}").format(levels=", ".join(m.value for m in Level))
        errors.append(feature_error(index, code, "level", reason))
    else:
        level = Level(raw_level)

    if code is not None and level is not None:
        problem = code_problem(code, level)
        if problem is not None:
            errors.append(feature_error(index, code, "code", problem))

    name_zh, error_zh = _text_property(properties, "name_zh", index, code)
    name_en, error_en = _text_property(properties, "name_en", index, code)
    errors.extend(error for error in (error_zh, error_en) if error is not None)

    parent_code = properties.get("parent_code")
    if parent_code is not None and not isinstance(parent_code, str):
        errors.append(feature_error(index, code, "parent_code", _("must be a string of digits")))
        parent_code = None
    if isinstance(parent_code, str):
        parent_code = parent_code.strip() or None
    if level is Level.CITY and parent_code is not None:
        errors.append(feature_error(index, code, "parent_code", _("a city has no parent")))

    geometry, geometry_text = build_geometry(raw.get("geometry"))
    geometry_problem = geometry_text if geometry is None else None
    if geometry_problem is not None:
        errors.append(feature_error(index, code, "geometry", geometry_problem))

    built = (index, code, geometry) if geometry is not None else None
    properties_ok = len(errors) == before or (
        geometry_problem is not None and len(errors) == before + 1
    )
    if code is None or level is None or name_zh is None or name_en is None or not properties_ok:
        return None, built
    feature = ParsedFeature(
        index=index,
        code=code,
        level=level,
        name_zh=name_zh,
        name_en=name_en,
        parent_code=parent_code,
        geometry=geometry,
        geometry_json=geometry_text if geometry is not None else "",
    )
    return feature, built
