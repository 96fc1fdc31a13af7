"""Importing a territory from GeoJSON: all of it or nothing, with every error named."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from citygrid.kit.actor import SYSTEM
from citygrid.kit.errors import NotFound, ValidationFailed
from citygrid.territory import geojson, service
from citygrid.territory.models import Level
from tests.fixtures_territory import MINI_GRID_CODES, import_mini_city, mini_city_collection
from tests.territory.builders import feature, find, rectangle, territory_state


def import_collection(
    session: Session, collection: dict[str, Any], *, replace: bool = False
) -> service.ImportReport:
    return service.import_feature_collection(
        session, SYSTEM, collection=collection, replace=replace
    )


def rejection(session: Session, collection: Any) -> list[dict[str, Any]]:
    """The error details of an import that must fail."""
    with pytest.raises(ValidationFailed) as caught:
        import_collection(session, collection)
    assert caught.value.status_code == 422
    details: list[dict[str, Any]] = caught.value.details
    return details


# ---------------------------------------------------------------------------- success


def test_the_mini_city_imports_with_every_unit(db_session: Session) -> None:
    report = import_collection(db_session, mini_city_collection())

    assert (report.created, report.updated, report.unchanged) == (18, 0, 0)
    assert report.revision == 1
    assert service.territory_revision(db_session) == 1
    assert [grid.code for grid in service.grids_under(db_session, code="440100")] == list(
        MINI_GRID_CODES
    )


def test_parents_are_derived_from_codes_and_the_city(mini_city: Session) -> None:
    assert service.get_unit(mini_city, code="440104001001002").parent_code == "440104001001"
    assert service.get_unit(mini_city, code="440104002").parent_code == "440104"
    assert service.get_unit(mini_city, code="440104").parent_code == "440100"
    assert service.get_unit(mini_city, code="440100").parent_code is None


def test_a_district_finds_its_stored_city_without_parent_code(db_session: Session) -> None:
    collection = mini_city_collection()
    city = find(collection, "440100")
    import_collection(db_session, {"type": "FeatureCollection", "features": [city]})
    rest = [item for item in collection["features"] if item is not city]
    for item in rest:
        item["properties"].pop("parent_code", None)

    import_collection(db_session, {"type": "FeatureCollection", "features": rest})

    assert service.get_unit(db_session, code="440104").parent_code == "440100"


def test_importing_the_same_file_again_changes_nothing(mini_city: Session) -> None:
    before = territory_state(mini_city)

    report = import_collection(mini_city, mini_city_collection())

    assert (report.created, report.updated, report.unchanged) == (0, 0, 18)
    assert report.revision == 1
    assert territory_state(mini_city) == before


def test_a_renamed_unit_is_updated_and_the_revision_moves(mini_city: Session) -> None:
    collection = mini_city_collection()
    find(collection, "440104001001002")["properties"]["name_en"] = "Fuqian North"
    service.get_unit(mini_city, code="440104001001002")  # loaded before the change

    report = import_collection(mini_city, collection)

    assert (report.created, report.updated, report.unchanged) == (0, 1, 17)
    assert report.revision == 2
    assert service.get_unit(mini_city, code="440104001001002").name_en == "Fuqian North"


def test_a_grid_can_join_a_community_that_is_already_stored(db_session: Session) -> None:
    collection = mini_city_collection()
    last_grid = find(collection, "440104002002002")
    collection["features"].remove(last_grid)
    import_collection(db_session, collection)

    report = import_collection(db_session, {"type": "FeatureCollection", "features": [last_grid]})

    assert (report.created, report.revision) == (1, 2)
    assert service.get_unit(db_session, code="440104002002002").parent_code == "440104002002"


def test_area_centroid_and_bbox_of_a_grid(mini_city: Session) -> None:
    grid = service.get_unit(mini_city, code="440104001001001")
    # A 0.001 x 0.001 degree cell from (113.265, 23.125): width on the parallel times
    # height along the meridian, with the WGS 84 radii of curvature at its middle latitude.
    lat = math.radians(23.1255)
    a, e2 = 6378137.0, 0.00669437999014
    prime_vertical = a / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    meridian = a * (1 - e2) / (1 - e2 * math.sin(lat) ** 2) ** 1.5
    expected = math.radians(0.001) * prime_vertical * math.cos(lat) * math.radians(0.001) * meridian

    assert grid.area_m2 == pytest.approx(expected, rel=0.001)
    assert grid.centroid == pytest.approx((113.2655, 23.1255))
    assert grid.bbox == pytest.approx((113.265, 23.125, 113.266, 23.126))


@pytest.mark.parametrize(
    ("lat", "degrees"),
    [(0.0, 1.0), (23.13, 0.01), (45.0, 0.5), (60.0, 0.001)],
)
def test_area_is_within_a_tenth_of_a_percent_of_the_ellipsoid(lat: float, degrees: float) -> None:
    # Exact area of a lon/lat cell on the ellipsoid: integrate M(phi) N(phi) cos(phi).
    a, e2 = 6378137.0, 0.00669437999014
    steps = 2000
    total = 0.0
    for step in range(steps):
        phi = math.radians(lat + degrees * (step + 0.5) / steps)
        w = 1 - e2 * math.sin(phi) ** 2
        total += (a * (1 - e2) / w**1.5) * (a / math.sqrt(w)) * math.cos(phi)
    expected = total * math.radians(degrees / steps) * math.radians(degrees)
    square = geojson.parse_geometry(rectangle_at(113.0, lat, degrees))[0]

    assert geojson.area_m2(square) == pytest.approx(expected, rel=0.001)


def rectangle_at(lon: float, lat: float, degrees: float) -> dict[str, Any]:
    ring = [
        [lon, lat],
        [lon + degrees, lat],
        [lon + degrees, lat + degrees],
        [lon, lat + degrees],
        [lon, lat],
    ]
    return {"type": "Polygon", "coordinates": [ring]}


def test_a_multipolygon_grid_is_accepted(db_session: Session) -> None:
    collection = mini_city_collection()
    two_parts = {
        "type": "MultiPolygon",
        "coordinates": [
            rectangle(4, 0, 4.5, 1)["coordinates"],
            rectangle(4.6, 0, 5, 1)["coordinates"],
        ],
    }
    find(collection, "440104002001002")["geometry"] = two_parts

    import_collection(db_session, collection)

    area = service.get_unit(db_session, code="440104002001002").area_m2
    whole = service.get_unit(db_session, code="440104002001001").area_m2
    assert area == pytest.approx(whole * 0.9, rel=0.01)


# ---------------------------------------------------------------------------- replace


def test_moving_a_stored_district_under_a_city_needs_replace(db_session: Session) -> None:
    without_city = mini_city_collection()
    without_city["features"] = [
        item for item in without_city["features"] if item["properties"]["level"] != "city"
    ]
    find(without_city, "440104")["properties"].pop("parent_code")
    import_collection(db_session, without_city)
    assert service.get_unit(db_session, code="440104").parent_code is None
    before = territory_state(db_session)

    details = rejection(db_session, mini_city_collection())

    assert [(d["code"], d["field"]) for d in details] == [("440104", "parent_code")]
    assert "replace" in details[0]["reason"]
    assert territory_state(db_session) == before

    report = import_collection(db_session, mini_city_collection(), replace=True)

    assert (report.created, report.updated) == (1, 1)
    assert service.get_unit(db_session, code="440104").parent_code == "440100"


# ---------------------------------------------------------------------------- bad input


def spoil_missing_property(collection: dict[str, Any]) -> None:
    del find(collection, "440104001001002")["properties"]["name_en"]


def spoil_code_length(collection: dict[str, Any]) -> None:
    find(collection, "440104001001002")["properties"]["code"] = "44010400100102"


def spoil_code_letters(collection: dict[str, Any]) -> None:
    find(collection, "440104001001002")["properties"]["code"] = "44010400100100A"


def spoil_level(collection: dict[str, Any]) -> None:
    find(collection, "440104001001002")["properties"]["level"] = "village"


def spoil_parent_prefix(collection: dict[str, Any]) -> None:
    find(collection, "440104001001002")["properties"]["parent_code"] = "440104002001"


def spoil_unknown_parent(collection: dict[str, Any]) -> None:
    grid = find(collection, "440104002002002")
    grid["properties"]["code"] = "440104003001001"


def spoil_bow_tie(collection: dict[str, Any]) -> None:
    x0, x1 = 113.266, 113.267
    y0, y1 = 23.125, 23.126
    bow_tie = [[x0, y0], [x1, y1], [x1, y0], [x0, y1], [x0, y0]]
    find(collection, "440104001001002")["geometry"]["coordinates"] = [bow_tie]


def spoil_unclosed_ring(collection: dict[str, Any]) -> None:
    ring = find(collection, "440104001001002")["geometry"]["coordinates"][0]
    ring.pop()


def spoil_outside_community(collection: dict[str, Any]) -> None:
    # Grid 2 of community 440104001001 moved up into the next community's row.
    find(collection, "440104001001002")["geometry"] = rectangle(1, 0.5, 2, 1.5)


def spoil_overlap(collection: dict[str, Any]) -> None:
    # Grid 2 slid half a cell onto grid 1 (still inside its community).
    find(collection, "440104001001002")["geometry"] = rectangle(0.5, 0, 1.5, 1)


def spoil_duplicate(collection: dict[str, Any]) -> None:
    collection["features"].append(copy.deepcopy(find(collection, "440104001001002")))


def spoil_swapped_lon_lat(collection: dict[str, Any]) -> None:
    ring = find(collection, "440104001001002")["geometry"]["coordinates"][0]
    for position in ring:
        position.reverse()


def spoil_point_geometry(collection: dict[str, Any]) -> None:
    find(collection, "440104001001002")["geometry"] = {
        "type": "Point",
        "coordinates": [113.2665, 23.1255],
    }


def spoil_city_with_parent(collection: dict[str, Any]) -> None:
    find(collection, "440100")["properties"]["parent_code"] = "440000"


SPOILERS: dict[str, tuple[Callable[[dict[str, Any]], None], str | None, str, str]] = {
    # name: (spoil, code in the error, field, words of the reason)
    "missing property": (spoil_missing_property, "440104001001002", "name_en", "missing"),
    "code length": (spoil_code_length, "44010400100102", "code", "15 digits"),
    "code letters": (spoil_code_letters, "44010400100100A", "code", "digits only"),
    "unknown level": (spoil_level, "440104001001002", "level", "must be one of"),
    "code not under parent": (
        spoil_parent_prefix,
        "440104001001002",
        "parent_code",
        "not under its parent 440104002001",
    ),
    "unknown parent": (
        spoil_unknown_parent,
        "440104003001001",
        "parent_code",
        "440104003001 is neither in the file nor stored",
    ),
    "self-intersection": (spoil_bow_tie, "440104001001002", "geometry", "Self-intersection"),
    "unclosed ring": (spoil_unclosed_ring, "440104001001002", "geometry", "not closed"),
    "grid outside its community": (
        spoil_outside_community,
        "440104001001002",
        "geometry",
        "not inside its community 440104001001",
    ),
    "overlapping grids": (spoil_overlap, "440104001001001", "geometry", "overlaps grid"),
    "duplicate code": (spoil_duplicate, "440104001001002", "code", "duplicate code"),
    "lon/lat out of range": (spoil_swapped_lon_lat, "440104001001002", "geometry", "out of range"),
    "not a polygon": (spoil_point_geometry, "440104001001002", "geometry", "not Point"),
    "city with a parent": (spoil_city_with_parent, "440100", "parent_code", "no parent"),
}


@pytest.mark.parametrize("case", list(SPOILERS))
def test_a_bad_feature_is_named_and_nothing_is_written(mini_city: Session, case: str) -> None:
    spoil, code, field, words = SPOILERS[case]
    collection = mini_city_collection()
    # A valid rename and a valid new district ride along: neither may be written.
    find(collection, "440104")["properties"]["name_en"] = "Renamed District"
    collection["features"].append(feature("440105", "district", rectangle(-1, -1, 0, 0)))
    spoil(collection)
    before = territory_state(mini_city)

    details = rejection(mini_city, collection)

    matching = [d for d in details if d["code"] == code and d["field"] == field]
    assert matching, details
    assert words in matching[0]["reason"]
    assert isinstance(matching[0]["feature"], int)
    assert territory_state(mini_city) == before


def test_every_error_is_reported_not_just_the_first(db_session: Session) -> None:
    collection = mini_city_collection()
    spoil_bow_tie(collection)
    spoil_missing_property(collection)
    find(collection, "440104002001003")["properties"]["code"] = "4401040020010"

    details = rejection(db_session, collection)

    assert {(d["code"], d["field"]) for d in details} >= {
        ("440104001001002", "geometry"),
        ("440104001001002", "name_en"),
        ("4401040020010", "code"),
    }
    assert territory_state(db_session)[0] == 0


def test_errors_are_capped_but_all_are_counted(db_session: Session) -> None:
    collection = mini_city_collection()
    for number in range(150):
        collection["features"].append(feature(f"440104001001{200 + number}", "grid", {}))

    with pytest.raises(ValidationFailed) as caught:
        import_collection(db_session, collection)

    assert len(caught.value.details) == geojson.MAX_ERRORS
    assert "150 errors" in caught.value.message


def test_malformed_json_is_a_clear_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        geojson.load_collection('{"type": "FeatureCollection", "features": [')

    [detail] = caught.value.details
    assert detail["field"] == "file"
    assert "not valid JSON" in detail["reason"]
    assert "line 1" in detail["reason"]


@pytest.mark.parametrize(
    "document",
    [
        {"type": "Feature", "properties": {}, "geometry": None},
        {"type": "FeatureCollection"},
        {"type": "FeatureCollection", "features": []},
        [],
    ],
    ids=["a feature", "no features key", "empty", "a list"],
)
def test_not_a_feature_collection_is_refused(db_session: Session, document: Any) -> None:
    details = rejection(db_session, document)

    assert details[0]["feature"] is None
    assert details[0]["field"] in ("type", "features")
    assert territory_state(db_session)[0] == 0


def test_a_json_list_file_is_not_a_feature_collection() -> None:
    with pytest.raises(ValidationFailed) as caught:
        geojson.load_collection(json.dumps([1, 2]))

    assert caught.value.details[0]["field"] == "type"


def test_a_reshaped_community_must_still_hold_its_stored_grids(mini_city: Session) -> None:
    smaller = find(mini_city_collection(), "440104001001")
    smaller["geometry"] = rectangle(0, 0, 2, 1)
    before = territory_state(mini_city)

    details = rejection(mini_city, {"type": "FeatureCollection", "features": [smaller]})

    assert [(d["code"], d["field"]) for d in details] == [("440104001001", "geometry")]
    assert "440104001001003" in details[0]["reason"]
    assert territory_state(mini_city) == before


def test_a_new_grid_may_not_overlap_a_stored_one(mini_city: Session) -> None:
    intruder = feature("440104001001004", "grid", rectangle(0.2, 0.2, 0.8, 0.8))

    details = rejection(mini_city, {"type": "FeatureCollection", "features": [intruder]})

    assert details[0]["field"] == "geometry"
    assert "overlaps grid 440104001001001" in details[0]["reason"]


def test_a_sliver_within_tolerance_is_not_an_overlap(db_session: Session) -> None:
    collection = mini_city_collection()
    # Grid 1's right edge drawn 5 mm into grid 2 (a degree of longitude is ~102.4 km
    # here): about 0.55 m2 of overlap, under the 1 m2 tolerance.
    ring = find(collection, "440104001001001")["geometry"]["coordinates"][0]
    for position in ring:
        if position[0] == 113.266:
            position[0] = 113.266 + 0.005 / 102_400

    report = import_collection(db_session, collection)

    assert report.created == 18


def test_a_level_never_changes(db_session: Session) -> None:
    # Dongguan (441900) has no districts: it may be stored as a district-level unit.
    dongguan = feature("441900", "district", rectangle(20, 20, 21, 21))
    import_collection(db_session, {"type": "FeatureCollection", "features": [dongguan]})
    dongguan["properties"]["level"] = "city"

    details = rejection(db_session, {"type": "FeatureCollection", "features": [dongguan]})

    assert [(d["code"], d["field"]) for d in details] == [("441900", "level")]
    assert "cannot change" in details[0]["reason"]


def test_reading_an_unknown_code_names_it(mini_city: Session) -> None:
    with pytest.raises(NotFound) as caught:
        service.get_unit(mini_city, code="440104009")

    assert "440104009" in caught.value.message


def test_units_read_down_and_up_the_hierarchy(mini_city: Session) -> None:
    chain = service.parent_chain(mini_city, code="440104002001003")
    kids = service.children(mini_city, code="440104")

    assert [(unit.code, unit.level) for unit in chain] == [
        ("440100", Level.CITY),
        ("440104", Level.DISTRICT),
        ("440104002", Level.STREET),
        ("440104002001", Level.COMMUNITY),
    ]
    assert [unit.code for unit in kids] == ["440104001", "440104002"]
    assert [grid.code for grid in service.grids_under(mini_city, code="440104002001003")] == [
        "440104002001003"
    ]


def test_import_mini_city_is_usable_by_other_domains(db_session: Session) -> None:
    import_mini_city(db_session)

    assert service.get_unit(db_session, code="440104001001001").level is Level.GRID
