"""Open311 GeoReport v2 conformance: every endpoint under /open311/v2/, as a client uses it,
in both formats (JSON parsed as JSON, XML parsed with xml.etree), on SQLite and PostgreSQL.

The client files Zhang Sijun's broken tile the way a city app would (form-encoded POST with
the demo api_key), follows it by token and by id while the command centre works the case,
and tries the wrong things: no key, a revoked key, an unknown service, no location, a
location outside the city, bad attributes, bad dates. Each refusal is GeoReport's error list
with 400, 403 or 404, and changes nothing.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET  # noqa: S405 - parsing our own server's answers

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, insert, select, text
from sqlalchemy.orm import Session

from citygrid.cases.catalogue import load_catalogue
from citygrid.cases.models import Case
from citygrid.cases.open311 import service as open311
from citygrid.cases.open311.models import Open311Request
from citygrid.kit import db as kit_db
from citygrid.kit.actor import Actor
from citygrid.kit.db import unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import Settings, normalise_database_url
from citygrid.kit.web import get_session
from citygrid.registry import service as registry
from tests.cases.conftest import DISPATCHER, FAR_GRID, HOUSING, TILE_GRID
from tests.cases.helpers import file_case, step
from tests.conftest import IN_CI, POSTGRES_URL, _postgres_admin_engine
from tests.fixtures_territory import import_mini_city, point_in_grid

FORMATS = ("json", "xml")
BASE = "/open311/v2"
DEMO_KEY = "citygrid-demo"
CLERK = Actor(name="worker-0001", role="grid_worker")
TILE_ADDRESS = "越秀区解放南路 12 号"
CITY_TIME = "+08:00"

# Personal data a client sends with a report: never in any answer.
EMAIL = "wang.xiaoming@example.com"
FIRST_NAME, LAST_NAME = "小明", "王"
PHONE = "13800138000"


# ============================================================================ reading answers


def _xml_value(element: ET.Element) -> Any:
    children = list(element)
    if not children:
        return element.text
    tags = [child.tag for child in children]
    if len(set(tags)) == 1 and len(tags) > 1 or element.tag in _XML_LISTS:
        return [_xml_value(child) for child in children]
    return {child.tag: _xml_value(child) for child in children}


# Elements that are lists even with one item (their items share one tag).
_XML_LISTS = {"services", "service_requests", "errors", "attributes", "values", "endpoints"}
_XML_LISTS |= {"formats"}


def read(response: Response, format_: str, root: str) -> Any:
    """The answer as Python values: JSON as is; XML checked for its declaration and root
    element, then turned into the same shape (every value a string or None)."""
    if format_ == "json":
        assert response.headers["content-type"].startswith("application/json")
        return response.json()
    assert response.headers["content-type"].startswith("text/xml")
    assert response.content.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    element = ET.fromstring(response.content)  # noqa: S314 - our own answer
    assert element.tag == root
    if root in _XML_LISTS and not list(element):
        return []
    return _xml_value(element)


def errors(response: Response, format_: str) -> list[dict[str, Any]]:
    """GeoReport's error list, as ``[{"code": int, "description": str}]``."""
    document = read(response, format_, "errors")
    assert isinstance(document, list) and document
    return [{"code": int(item["code"]), "description": item["description"]} for item in document]


def assert_refused(response: Response, format_: str, status: int, *words: str) -> None:
    """The answer is GeoReport's error list with this status, naming ``words``."""
    assert response.status_code == status, response.text
    [error] = errors(response, format_)
    assert error["code"] == status
    for word in words:
        assert word in error["description"], error["description"]


def count_cases(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Case)) or 0)


def is_true(value: Any) -> bool:
    return value is True or value == "true"


# ============================================================================ fixtures


@pytest.fixture
def open311_client(app: FastAPI, db_session: Session, city: Session) -> Iterator[TestClient]:
    """An Open311 client of the app over the mini city; each request in its own savepoint
    (as in its own transaction in production), so a refused one rolls back only itself."""

    def _request_session() -> Iterator[Session]:
        with db_session.begin_nested():
            yield db_session

    app.dependency_overrides[get_session] = _request_session
    with TestClient(app, headers={"Accept-Language": "en"}) as test_client:
        yield test_client


@pytest.fixture
def building(city: Session) -> str:
    """A building of the registry in the tile's grid; its address."""
    lon, lat = point_in_grid(TILE_GRID)
    registry.create_building(
        city,
        CLERK,
        data={"grid_code": TILE_GRID, "address": TILE_ADDRESS, "lon": lon, "lat": lat, "floors": 7},
    )
    city.flush()
    return TILE_ADDRESS


def tile_form(**overrides: Any) -> dict[str, Any]:
    """Zhang Sijun's tile as an Open311 app sends it."""
    lon, lat = point_in_grid(TILE_GRID)
    form: dict[str, Any] = {
        "api_key": DEMO_KEY,
        "service_code": "C0201",
        "lat": f"{lat:.7f}",
        "long": f"{lon:.7f}",
        "description": "Three pavement tiles broken in front of No. 12 Jiefang Road",
        "attribute[priority]": "high",
        "attribute[tiles_broken]": "3",
        "attribute[trip_hazard]": "yes",
        "email": EMAIL,
        "first_name": FIRST_NAME,
        "last_name": LAST_NAME,
        "phone": PHONE,
        "media_url": "https://photos.example.org/tile-12.jpg",
        "device_id": "device-42",
        "account_id": "citizen-7",
    }
    form.update(overrides)
    return {key: value for key, value in form.items() if value is not None}


def post(client: TestClient, format_: str, form: dict[str, Any], **kwargs: Any) -> Response:
    return client.post(f"{BASE}/requests.{format_}", data=form, **kwargs)


# ============================================================================ discovery, services


@pytest.mark.parametrize("format_", FORMATS)
def test_discovery_names_the_endpoint_the_specification_and_both_formats(
    open311_client: TestClient, format_: str
) -> None:
    response = open311_client.get(f"{BASE}/discovery.{format_}")

    assert response.status_code == 200
    document = read(response, format_, "discovery")
    [endpoint] = document["endpoints"]
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["url"] == "http://testserver/open311/v2/"
    assert endpoint["type"] == "production"
    assert sorted(endpoint["formats"]) == ["application/json", "text/xml"]
    assert document["changeset"].endswith(CITY_TIME)
    assert "citygrid-demo" in document["key_service"]


@pytest.mark.parametrize("format_", FORMATS)
def test_services_are_the_catalogue_s_minor_classes(
    open311_client: TestClient, format_: str
) -> None:
    response = open311_client.get(f"{BASE}/services.{format_}")

    assert response.status_code == 200
    services = read(response, format_, "services")
    assert [service["service_code"] for service in services] == [
        category.code for category in load_catalogue()
    ]
    tiles = next(service for service in services if service["service_code"] == "C0201")
    assert tiles["service_name"] == "Floor tiles"
    assert tiles["group"] == "Roads and traffic"
    assert tiles["type"] == "realtime"
    assert is_true(tiles["metadata"])
    assert "地面砖" in tiles["keywords"] and "tiles" in tiles["keywords"]
    assert tiles["description"]  # the registration criterion


@pytest.mark.parametrize("format_", FORMATS)
def test_service_names_follow_the_locale_parameter_and_accept_language(
    open311_client: TestClient, format_: str
) -> None:
    by_parameter = open311_client.get(f"{BASE}/services.{format_}", params={"locale": "zh_CN"})
    by_header = open311_client.get(
        f"{BASE}/services.{format_}", headers={"Accept-Language": "zh-CN,zh;q=0.9"}
    )

    for response in (by_parameter, by_header):
        services = read(response, format_, "services")
        tiles = next(service for service in services if service["service_code"] == "C0201")
        assert tiles["service_name"] == "地面砖"
        assert tiles["group"] == "道路交通"


@pytest.mark.parametrize("format_", FORMATS)
def test_a_service_definition_lists_priority_and_the_category_s_own_attributes(
    open311_client: TestClient, format_: str
) -> None:
    response = open311_client.get(f"{BASE}/services/C0101.{format_}")

    assert response.status_code == 200
    definition = read(response, format_, "service_definition")
    assert definition["service_code"] == "C0101"
    priority, cover = definition["attributes"]
    assert priority["code"] == "priority"
    assert priority["datatype"] == "singlevaluelist"
    assert not is_true(priority["required"])
    assert str(priority["order"]) == "1"
    assert [value["key"] for value in priority["values"]] == ["urgent", "high", "normal"]
    assert cover["code"] == "cover_state"
    assert is_true(cover["required"]) and is_true(cover["variable"])
    assert str(cover["order"]) == "2"
    assert [value["key"] for value in cover["values"]] == [
        "missing",
        "broken",
        "displaced",
        "uneven",
    ]
    assert cover["values"][0]["name"] == "Missing"


@pytest.mark.parametrize("format_", FORMATS)
def test_an_unknown_service_definition_is_404(open311_client: TestClient, format_: str) -> None:
    response = open311_client.get(f"{BASE}/services/C9999.{format_}")

    assert_refused(response, format_, 404, "service_code")


# ============================================================================ filing and following


@pytest.mark.parametrize("format_", FORMATS)
def test_a_client_files_the_tile_and_follows_it_by_token_and_by_id(
    open311_client: TestClient, city: Session, format_: str
) -> None:
    response = post(open311_client, format_, tile_form())

    assert response.status_code == 200, response.text
    [filed] = read(response, format_, "service_requests")
    ref, token = filed["service_request_id"], filed["token"]
    assert len(ref) >= 16 and len(token) >= 16
    assert "2 working days" in filed["service_notice"]  # floor tiles, high priority
    assert filed["account_id"] == "citizen-7"
    for secret in (EMAIL, PHONE, FIRST_NAME, LAST_NAME):
        assert secret not in response.text

    by_token = open311_client.get(f"{BASE}/tokens/{token}.{format_}")
    [found] = read(by_token, format_, "service_requests")
    assert found == {"service_request_id": ref, "token": token}

    by_id = open311_client.get(f"{BASE}/requests/{ref}.{format_}")
    assert by_id.status_code == 200
    [request] = read(by_id, format_, "service_requests")
    assert request["service_request_id"] == ref
    assert request["status"] == "open"
    assert request["status_notes"] == "Received: the command centre will check it."
    assert request["service_code"] == "C0201"
    assert request["service_name"] == "Floor tiles"
    assert request["description"] == tile_form()["description"]
    assert request["agency_responsible"] == "Housing and Urban-Rural Development Bureau"
    assert request["media_url"] == "https://photos.example.org/tile-12.jpg"
    assert request["requested_datetime"].endswith(CITY_TIME)
    assert request["expected_datetime"] in (None, "")  # the clock starts at dispatch
    lon, lat = point_in_grid(TILE_GRID)
    assert abs(float(request["lat"]) - lat) < 1e-6 and abs(float(request["long"]) - lon) < 1e-6
    for secret in (EMAIL, PHONE, FIRST_NAME, LAST_NAME):
        assert secret not in by_id.text

    case = city.scalars(select(Case).where(Case.ref == ref)).one()
    assert (case.source.value, case.priority.value, case.grid_code) == (
        "open311",
        "high",
        TILE_GRID,
    )
    assert (case.reporter_contact_name, case.reporter_contact_phone) == ("王小明", PHONE)
    side = city.scalars(select(Open311Request).where(Open311Request.case_id == case.id)).one()
    assert side.reporter_email == EMAIL
    assert side.attributes == {"priority": "high", "tiles_broken": 3, "trip_hazard": "yes"}
    assert (side.device_id, side.account_id) == ("device-42", "citizen-7")


@pytest.mark.parametrize("format_", FORMATS)
def test_the_request_follows_the_loop_to_closed_with_its_deadline(
    open311_client: TestClient, city: Session, format_: str
) -> None:
    [filed] = post(open311_client, "json", tile_form()).json()
    ref = filed["service_request_id"]
    case = city.scalars(select(Case).where(Case.ref == ref)).one()

    def current() -> dict[str, Any]:
        answer = open311_client.get(f"{BASE}/requests/{ref}.{format_}")
        [request] = read(answer, format_, "service_requests")
        return dict(request)

    step(city, DISPATCHER, case, "register")
    assert current()["status_notes"].startswith("Registered")
    step(city, DISPATCHER, case, "dispatch")
    dispatched = current()
    assert dispatched["status"] == "open"
    assert dispatched["status_notes"] == "Sent to Housing and Urban-Rural Development Bureau."
    assert dispatched["expected_datetime"].endswith(CITY_TIME)
    deadline = datetime.fromisoformat(dispatched["expected_datetime"])
    assert case.deadline_at is not None and deadline == case.deadline_at.replace(microsecond=0)
    step(city, HOUSING, case, "accept")
    step(city, HOUSING, case, "feedback", note="Tiles replaced")
    step(
        city,
        Actor(name="zhang", role="grid_worker", scopes=(TILE_GRID,)),
        case,
        "verify",
        result="pass",
    )
    closed = current()
    assert closed["status"] == "closed"
    assert closed["status_notes"] == "Fixed, and checked on site."


@pytest.mark.parametrize("format_", FORMATS)
def test_a_repeated_submit_with_the_same_idempotency_key_files_one_case(
    open311_client: TestClient, city: Session, format_: str
) -> None:
    headers = {"Idempotency-Key": str(uuid.uuid4())}

    first = post(open311_client, format_, tile_form(), headers=headers)
    second = post(open311_client, format_, tile_form(), headers=headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert read(first, format_, "service_requests") == read(second, format_, "service_requests")
    assert count_cases(city) == 1


@pytest.mark.parametrize("format_", FORMATS)
def test_an_address_string_is_found_among_the_registry_s_buildings(
    open311_client: TestClient, city: Session, building: str, format_: str
) -> None:
    # Spelled without the spaces the registry has.
    form = tile_form(lat=None, long=None, address_string="越秀区解放南路12号")

    response = post(open311_client, format_, form)

    assert response.status_code == 200, response.text
    [filed] = read(response, format_, "service_requests")
    case = city.scalars(select(Case).where(Case.ref == filed["service_request_id"])).one()
    assert case.grid_code == TILE_GRID
    assert case.address == building
    assert (case.lon, case.lat) == pytest.approx(point_in_grid(TILE_GRID))


# ============================================================================ refusals


@pytest.mark.parametrize("format_", FORMATS)
@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"api_key": None}, 403, ["api_key"]),
        ({"api_key": "o311_not-a-key"}, 403, ["api_key"]),
        ({"service_code": None}, 400, ["service_code"]),
        ({"service_code": "C9999"}, 400, ["service_code"]),
        ({"lat": None, "long": None}, 400, ["lat, long"]),
        ({"long": None}, 400, ["lat, long"]),
        ({"lat": "north"}, 400, ["lat"]),
        ({"lat": "10.0", "long": "10.0"}, 400, ["lat, long", "outside"]),
        ({"attribute[priority]": "whenever"}, 400, ["attribute[priority]"]),
        ({"attribute[tiles_broken]": "many"}, 400, ["attribute[tiles_broken]"]),
        ({"attribute[colour]": "red"}, 400, ["attribute[colour]"]),
        ({f"attribute[{PHONE}]": "red"}, 400, ["attribute[...]", "no such attribute"]),
        (
            {
                "service_code": "C0101",
                "attribute[tiles_broken]": None,
                "attribute[trip_hazard]": None,
            },
            400,
            ["attribute[cover_state]", "required"],
        ),
        ({"email": "not-an-address"}, 400, ["email"]),
        ({"phone": "call me"}, 400, ["phone"]),
        ({"media_url": "file:///etc/passwd"}, 400, ["media_url"]),
        ({"description": "x" * 2001}, 400, ["description"]),
        ({"lat": None, "long": None, "address_id": "17"}, 400, ["address_id"]),
    ],
)
def test_a_bad_request_is_refused_naming_the_parameter_and_files_nothing(
    open311_client: TestClient,
    city: Session,
    format_: str,
    change: dict[str, Any],
    status: int,
    words: list[str],
) -> None:
    response = post(open311_client, format_, tile_form(**change))

    assert_refused(response, format_, status, *words)
    assert count_cases(city) == 0
    for secret in (EMAIL, PHONE):
        assert secret not in response.text


@pytest.mark.parametrize("format_", FORMATS)
def test_an_unknown_or_ambiguous_address_string_is_400(
    open311_client: TestClient, city: Session, building: str, format_: str
) -> None:
    lon, lat = point_in_grid(FAR_GRID)
    registry.create_building(
        city,
        CLERK,
        data={
            "grid_code": FAR_GRID,
            "address": "越秀区东风路 1 号",
            "lon": lon,
            "lat": lat,
            "floors": 3,
        },
    )
    lon, lat = point_in_grid(TILE_GRID)
    registry.create_building(
        city,
        CLERK,
        data={
            "grid_code": TILE_GRID,
            "address": "越秀区东风路 1 号",
            "lon": lon,
            "lat": lat,
            "floors": 3,
        },
    )
    city.flush()

    unknown = post(
        open311_client, format_, tile_form(lat=None, long=None, address_string="月球路 1 号")
    )
    ambiguous = post(
        open311_client, format_, tile_form(lat=None, long=None, address_string="越秀区东风路 1 号")
    )

    assert_refused(unknown, format_, 400, "address_string", "no building")
    assert_refused(ambiguous, format_, 400, "address_string", "several buildings")
    assert count_cases(city) == 0


@pytest.mark.parametrize("format_", FORMATS)
def test_only_live_keys_file_requests_and_the_demo_key_only_in_demo_mode(
    app: FastAPI, open311_client: TestClient, city: Session, format_: str
) -> None:
    issued = open311.create_key(city, CLERK, name="City app", department="urban-management")
    revoked = open311.create_key(city, CLERK, name="Old app", department="urban-management")
    open311.revoke_key(city, CLERK, prefix=revoked.row.prefix)
    app.state.settings = app.state.settings.model_copy(update={"demo_mode": False})

    with_demo_key = post(open311_client, format_, tile_form())
    with_revoked_key = post(open311_client, format_, tile_form(api_key=revoked.api_key))
    with_live_key = post(open311_client, format_, tile_form(api_key=issued.api_key))

    assert_refused(with_demo_key, format_, 403, "api_key")
    assert_refused(with_revoked_key, format_, 403, "api_key")
    assert with_live_key.status_code == 200, with_live_key.text
    [filed] = read(with_live_key, format_, "service_requests")
    case = city.scalars(select(Case).where(Case.ref == filed["service_request_id"])).one()
    assert case.reporter_name == f"open311:{issued.row.prefix}"
    assert issued.api_key not in str(city.scalars(select(Open311Request)).all())


@pytest.mark.parametrize("format_", FORMATS)
def test_unknown_ids_tokens_formats_and_paths_are_404(
    open311_client: TestClient, format_: str
) -> None:
    assert_refused(
        open311_client.get(f"{BASE}/requests/nosuchrequest0000.{format_}"),
        format_,
        404,
        "service_request_id",
    )
    assert_refused(
        open311_client.get(f"{BASE}/tokens/nosuchtoken.{format_}"), format_, 404, "token"
    )
    assert_refused(open311_client.get(f"{BASE}/nothing-here.{format_}"), format_, 404)
    assert_refused(open311_client.delete(f"{BASE}/requests.{format_}"), format_, 404)
    assert_refused(open311_client.get(f"{BASE}/services.csv"), "json", 404, "format")


# ============================================================================ GET requests


NOW = datetime.now(UTC)


def _file_at(city: Session, locator: Any, moment: datetime, **overrides: Any) -> Case:
    return file_case(city, DISPATCHER, locator, now=moment, **overrides)


@pytest.fixture
def history(city: Session, locator: Any) -> dict[str, Case]:
    """Cases reported over the last months: one 100 days ago, one rejected (closed) 10 days
    ago, an illegal parking 2 days ago, a tile today."""
    cases_by_name = {
        "old": _file_at(city, locator, NOW - timedelta(days=100)),
        "rejected": _file_at(city, locator, NOW - timedelta(days=10)),
        "parking": _file_at(city, locator, NOW - timedelta(days=2), category="E0403"),
        "today": _file_at(city, locator, NOW - timedelta(minutes=5)),
    }
    step(
        city,
        DISPATCHER,
        cases_by_name["rejected"],
        "reject",
        reason="not_meeting_criterion",
        note="Private courtyard",
    )
    city.flush()
    return cases_by_name


def ids(response: Response, format_: str) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["service_request_id"] for item in read(response, format_, "service_requests")]


@pytest.mark.parametrize("format_", FORMATS)
def test_requests_default_to_the_last_90_days_newest_first(
    open311_client: TestClient, history: dict[str, Case], format_: str
) -> None:
    response = open311_client.get(f"{BASE}/requests.{format_}")

    assert ids(response, format_) == [
        history[name].ref for name in ("today", "parking", "rejected")
    ]


@pytest.mark.parametrize("format_", FORMATS)
def test_requests_filter_by_status_service_code_and_window(
    open311_client: TestClient, history: dict[str, Case], format_: str
) -> None:
    url = f"{BASE}/requests.{format_}"

    closed = open311_client.get(url, params={"status": "closed"})
    open_ = open311_client.get(url, params={"status": "open"})
    both = open311_client.get(url, params={"status": "open,closed"})
    parking = open311_client.get(url, params={"service_code": "E0403"})
    tiles_and_parking = open311_client.get(url, params={"service_code": "C0201,E0403"})
    start = (NOW - timedelta(days=120)).isoformat()
    end = (NOW - timedelta(days=50)).isoformat()
    window = open311_client.get(url, params={"start_date": start, "end_date": end})
    only_start = open311_client.get(url, params={"start_date": start})
    only_end = open311_client.get(url, params={"end_date": end})

    assert ids(closed, format_) == [history["rejected"].ref]
    assert ids(open_, format_) == [history["today"].ref, history["parking"].ref]
    assert len(ids(both, format_)) == 3
    assert ids(parking, format_) == [history["parking"].ref]
    assert len(ids(tiles_and_parking, format_)) == 3
    assert ids(window, format_) == [history["old"].ref]
    assert ids(only_start, format_) == [history["old"].ref]  # start .. start + 90 days
    assert ids(only_end, format_) == [history["old"].ref]  # end - 90 days .. end
    [rejected] = read(closed, format_, "service_requests")
    assert rejected["status_notes"].startswith("Not registered")
    # Filed by the command centre (a hotline call): its description is for the departments.
    assert rejected["description"] in (None, "")
    assert rejected["service_name"] == "Floor tiles"


@pytest.mark.parametrize("format_", FORMATS)
def test_service_request_ids_override_every_other_filter(
    open311_client: TestClient, history: dict[str, Case], format_: str
) -> None:
    wanted = f"{history['old'].ref},{history['today'].ref},nosuchrequest"

    response = open311_client.get(
        f"{BASE}/requests.{format_}",
        params={"service_request_id": wanted, "status": "closed", "service_code": "E0403"},
    )

    assert ids(response, format_) == [history["old"].ref, history["today"].ref]


@pytest.mark.parametrize("format_", FORMATS)
@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"start_date": "yesterday"}, ["start_date"]),
        ({"end_date": "2026-13-45"}, ["end_date"]),
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"}, ["90 days"]),
        ({"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"}, ["end_date"]),
        ({"status": "pending"}, ["status"]),
        ({"service_code": "C0201,X1"}, ["service_code"]),
    ],
)
def test_bad_filters_are_400(
    open311_client: TestClient, format_: str, params: dict[str, str], words: list[str]
) -> None:
    response = open311_client.get(f"{BASE}/requests.{format_}", params=params)

    assert_refused(response, format_, 400, *words)


def test_requests_answer_at_most_1000(
    open311_client: TestClient, city: Session, locator: Any
) -> None:
    template = file_case(city, DISPATCHER, locator, now=NOW - timedelta(days=89))
    columns = {
        column.key: getattr(template, column.key)
        for column in Case.__table__.columns
        if column.key not in ("id", "ref", "idempotency_key")
    }
    rows = [
        {**columns, "ref": f"bulk{number:012d}", "reported_at": NOW - timedelta(hours=number)}
        for number in range(1, 1001)
    ]
    city.execute(insert(Case), rows)
    city.flush()

    response = open311_client.get(f"{BASE}/requests.json")

    found = ids(response, "json")
    assert len(found) == 1000
    assert found[:2] == ["bulk000000000001", "bulk000000000002"]
    assert template.ref not in found  # the oldest of 1,001 in the window


def test_status_notes_are_in_the_caller_s_language(
    open311_client: TestClient, history: dict[str, Case]
) -> None:
    response = open311_client.get(
        f"{BASE}/requests/{history['today'].ref}.json", params={"locale": "zh_CN"}
    )

    [request] = response.json()
    assert request["service_name"] == "地面砖"
    assert request["status_notes"] == "已收到：指挥中心将进行核实。"
    assert request["agency_responsible"] == "住房和城乡建设局"


# ============================================================================ a live server


@pytest.fixture(params=["sqlite", "postgresql"])
def live_url(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh database with the mini city (committed: the server has its own connections)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'open311.sqlite3'}"
        upgrade(url)
        with unit_of_work(url) as session:
            import_mini_city(session)
        yield url
        kit_db.get_engine(url).dispose()
        return
    admin = _postgres_admin_engine()
    if admin is None:
        if IN_CI:
            pytest.fail("PostgreSQL is unreachable")
        pytest.skip("PostgreSQL is not reachable")
    name = f"citygrid_open311_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = normalise_database_url(POSTGRES_URL).rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        with unit_of_work(url) as session:
            import_mini_city(session)
        yield url
    finally:
        kit_db.get_engine(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def live_server(live_url: str) -> Iterator[str]:
    """The app served by uvicorn on a free local port; its base URL."""
    from citygrid.app import create_app

    app = create_app(Settings(database_url=live_url, demo_mode=True))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start within 20 s")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=20)
        listener.close()


def _http(method: str, url: str, form: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - local server
    if data is not None:
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    request.add_header("Accept-Language", "en")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def test_a_plain_http_client_files_and_follows_a_request_on_a_live_server(
    live_server: str,
) -> None:
    endpoint = f"{live_server}{BASE}"
    form = {key: str(value) for key, value in tile_form().items()}

    status, content_type, body = _http("POST", f"{endpoint}/requests.xml", form)
    assert status == 200, body
    assert content_type.startswith("text/xml")
    filed = ET.fromstring(body).find("request")  # noqa: S314 - our own answer
    assert filed is not None
    ref = filed.findtext("service_request_id")
    token = filed.findtext("token")

    status, _, body = _http("GET", f"{endpoint}/tokens/{token}.xml")
    assert status == 200 and ET.fromstring(body).findtext("request/service_request_id") == ref  # noqa: S314

    status, content_type, body = _http("GET", f"{endpoint}/requests.json?status=open")
    assert status == 200 and content_type.startswith("application/json")
    assert ref in body.decode() and EMAIL not in body.decode()

    status, _, body = _http("GET", f"{endpoint}/requests/{ref}.xml")
    request = ET.fromstring(body).find("request")  # noqa: S314
    assert request is not None and request.findtext("status") == "open"

    status, _, body = _http("POST", f"{endpoint}/requests.xml", {**form, "api_key": ""})
    assert status == 403
    assert ET.fromstring(body).findtext("error/code") == "403"  # noqa: S314
