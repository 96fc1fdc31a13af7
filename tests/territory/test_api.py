"""The territory API: units, GeoJSON for the map, and locating a point."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.kit.actor import SYSTEM
from citygrid.registry.models import Building
from citygrid.territory import service
from tests.fixtures_territory import mini_city_collection, point_in_grid
from tests.territory.builders import cell_lat, cell_lon, find, rectangle

ENGLISH = {"Accept-Language": "en"}
CHINESE = {"Accept-Language": "zh-CN"}


@pytest.fixture
def city_client(mini_city: Session, client: TestClient) -> TestClient:
    return client


def add_building(session: Session, grid_code: str, token: str) -> None:
    lon, lat = point_in_grid(grid_code)
    session.add(
        Building(
            grid_code=grid_code, address="1 Test Road", lon=lon, lat=lat, floors=6, qr_token=token
        )
    )
    session.flush()


# ---------------------------------------------------------------------------- a unit


def test_a_unit_comes_with_its_parents_and_children(city_client: TestClient) -> None:
    response = city_client.get("/api/v1/territory/440104001")

    assert response.status_code == 200
    body = response.json()
    assert body["code"] == "440104001"
    assert body["level"] == "street"
    assert body["name_zh"] == "北京街道"
    assert body["name_en"] == "Beijing Street"
    assert body["area_m2"] == pytest.approx(6 * 11343, rel=0.01)
    assert body["centroid"] == pytest.approx([113.2665, 23.126])
    assert body["bbox"] == pytest.approx([113.265, 23.125, 113.268, 23.127])
    assert [unit["code"] for unit in body["parent_chain"]] == ["440100", "440104"]
    assert [unit["code"] for unit in body["children"]] == ["440104001001", "440104001002"]
    assert body["children"][0] == {
        "code": "440104001001",
        "level": "community",
        "name_zh": "府前社区",
        "name_en": "Fuqian Community",
    }
    assert "geometry" not in body


def test_an_unknown_code_is_a_404_naming_it(city_client: TestClient) -> None:
    response = city_client.get("/api/v1/territory/440104009", headers=ENGLISH)

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "440104009" in error["message"]


@pytest.mark.parametrize("code", ["4401", "44010400", "44010A", "4401040010010011"])
def test_a_malformed_code_is_a_422_naming_the_field(city_client: TestClient, code: str) -> None:
    for path in (f"/api/v1/territory/{code}", f"/api/v1/territory/{code}/grids.geojson"):
        response = city_client.get(path)

        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["field"] == "code"


# ---------------------------------------------------------------------------- GeoJSON


def test_the_grids_of_a_community_as_geojson(city_client: TestClient) -> None:
    response = city_client.get("/api/v1/territory/440104001001/grids.geojson", headers=CHINESE)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    body = response.json()
    assert body["type"] == "FeatureCollection"
    codes = [item["properties"]["code"] for item in body["features"]]
    assert codes == ["440104001001001", "440104001001002", "440104001001003"]
    first = body["features"][0]
    assert first["type"] == "Feature"
    assert first["geometry"]["type"] == "Polygon"
    assert first["geometry"]["coordinates"][0][0] == [113.265, 23.125]
    properties = first["properties"]
    assert properties["name"] == "府前社区第1网格"
    assert properties["name_en"] == "Fuqian Community Grid 1"
    for count in ("buildings", "housing_units", "households", "residents", "components"):
        assert properties[count] == 0


def test_the_name_follows_the_request_language(city_client: TestClient) -> None:
    response = city_client.get("/api/v1/territory/440104001001001/grids.geojson", headers=ENGLISH)

    [only] = response.json()["features"]
    assert only["properties"]["code"] == "440104001001001"  # a grid's own code: itself
    assert only["properties"]["name"] == "Fuqian Community Grid 1"
    assert only["properties"]["name_zh"] == "府前社区第1网格"


def test_the_whole_city_and_other_levels(city_client: TestClient, mini_city: Session) -> None:
    add_building(mini_city, "440104001001001", "qr-test-1")
    add_building(mini_city, "440104001002002", "qr-test-2")
    add_building(mini_city, "440104002001001", "qr-test-3")

    grids = city_client.get("/api/v1/territory/440100/grids.geojson").json()["features"]
    streets = city_client.get("/api/v1/territory/440100/grids.geojson?level=street").json()
    communities = city_client.get("/api/v1/territory/440104/grids.geojson?level=community")

    assert len(grids) == 10
    assert sum(item["properties"]["buildings"] for item in grids) == 3
    assert [
        (f["properties"]["code"], f["properties"]["buildings"]) for f in streets["features"]
    ] == [
        ("440104001", 2),
        ("440104002", 1),
    ]
    assert streets["features"][0]["properties"]["level"] == "street"
    assert [f["properties"]["buildings"] for f in communities.json()["features"]] == [1, 1, 1, 0]


def test_a_unit_at_the_level_asked_for_gives_itself(city_client: TestClient) -> None:
    response = city_client.get("/api/v1/territory/440104002/grids.geojson?level=street")

    assert [f["properties"]["code"] for f in response.json()["features"]] == ["440104002"]


def test_the_openapi_document_lists_the_territory_paths(city_client: TestClient) -> None:
    paths = city_client.get("/openapi.json").json()["paths"]

    assert "/api/v1/territory/{code}" in paths
    geojson = paths["/api/v1/territory/{code}/grids.geojson"]["get"]["responses"]["200"]
    assert "application/geo+json" in geojson["content"]
    assert "/api/v1/locate" in paths


def test_a_level_above_the_unit_or_unknown_is_a_422(city_client: TestClient) -> None:
    above = city_client.get("/api/v1/territory/440104001001/grids.geojson?level=street")
    unknown = city_client.get("/api/v1/territory/440104/grids.geojson?level=village")

    assert above.status_code == 422
    assert above.json()["error"]["details"][0]["field"] == "level"
    assert unknown.status_code == 422
    assert unknown.json()["error"]["details"][0]["field"] == "level"


def test_the_geojson_of_an_unknown_unit_is_a_404(city_client: TestClient) -> None:
    response = city_client.get("/api/v1/territory/440199/grids.geojson")

    assert response.status_code == 404


# ---------------------------------------------------------------------------- locate


def test_locating_a_point_gives_the_grid_and_the_units_above(city_client: TestClient) -> None:
    lon, lat = point_in_grid("440104002001003")

    response = city_client.get(f"/api/v1/locate?lat={lat}&lon={lon}")

    assert response.status_code == 200
    body = response.json()
    assert body["grid"] == {
        "code": "440104002001003",
        "name_zh": "光塔社区第3网格",
        "name_en": "Guangta Community Grid 3",
    }
    assert body["community"]["code"] == "440104002001"
    assert body["street"] == {
        "code": "440104002",
        "name_zh": "人民街道",
        "name_en": "Renmin Street",
    }
    assert body["district"]["code"] == "440104"
    assert body["city"]["code"] == "440100"


def test_a_point_on_a_shared_edge_goes_to_the_lowest_code(city_client: TestClient) -> None:
    response = city_client.get(f"/api/v1/locate?lat={cell_lat(0.5)}&lon={cell_lon(3)}")

    assert response.json()["grid"]["code"] == "440104001001003"


def test_a_point_outside_the_grids_is_a_404(city_client: TestClient) -> None:
    response = city_client.get("/api/v1/locate?lat=23.0&lon=113.0", headers=ENGLISH)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "outside the city's grids" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lon=113.27", "lat"),
        ("lat=23.13", "lon"),
        ("lat=north&lon=113.27", "lat"),
        ("lat=23.13&lon=east", "lon"),
        ("lat=91&lon=113.27", "lat"),
        ("lat=23.13&lon=-180.5", "lon"),
        ("lat=nan&lon=113.27", "lat"),
        ("lat=23.13&lon=inf", "lon"),
    ],
)
def test_a_bad_coordinate_is_a_422_naming_it(
    city_client: TestClient, query: str, field: str
) -> None:
    response = city_client.get(f"/api/v1/locate?{query}")

    assert response.status_code == 422
    assert [detail["field"] for detail in response.json()["error"]["details"]] == [field]


def test_locate_follows_a_reimport(city_client: TestClient, mini_city: Session) -> None:
    lon, lat = cell_lon(1.25), cell_lat(0.5)
    before = city_client.get(f"/api/v1/locate?lat={lat}&lon={lon}").json()["grid"]["code"]
    collection = mini_city_collection()
    find(collection, "440104001001001")["geometry"] = rectangle(0, 0, 1.5, 1)
    find(collection, "440104001001002")["geometry"] = rectangle(1.5, 0, 2, 1)
    service.import_feature_collection(mini_city, SYSTEM, collection=collection)

    # Each process re-checks the territory revision at most once a second: poll for it.
    deadline = time.monotonic() + 10
    after = before
    while after == before and time.monotonic() < deadline:
        after = city_client.get(f"/api/v1/locate?lat={lat}&lon={lon}").json()["grid"]["code"]

    assert (before, after) == ("440104001001002", "440104001001001")


def test_locate_on_an_empty_territory_is_a_404(client: TestClient) -> None:
    response = client.get("/api/v1/locate?lat=23.13&lon=113.27")

    assert response.status_code == 404
