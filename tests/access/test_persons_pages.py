"""The pages of personal data, as a grid worker and an official use them on a tablet: my
grid, a building's residents, the person page with reveal, search, the territory; masked,
audited, and no personal data in any address."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.access.policy import default_policy
from citygrid.kit.settings import Settings
from tests.access.auth_factories import csrf_in, fast_settings, make_account, request_scoped_app
from tests.access.auth_factories import sign_in as sign_in_with_form
from tests.access.gateway_factories import (  # noqa: F401 - registry_fields_only is a fixture
    COMMUNITY_OFFICIAL,
    GRID,
    GRID_WORKER,
    World,
    act_as,
    entries,
    populate,
    registry_fields_only,
)

PATROL = "patrol-update"
BROWSER = {"Accept": "text/html", "Accept-Language": "en"}
HREF = re.compile(r'(?:href|action)="([^"]+)"')

pytestmark = pytest.mark.usefixtures("registry_fields_only")


@pytest.fixture
def world(db_session: Session) -> World:
    made = populate(db_session)
    db_session.commit()
    return made


@pytest.fixture
def worker(app: FastAPI, client: TestClient) -> TestClient:
    act_as(app, GRID_WORKER)
    client.headers.update(BROWSER)
    return client


def _addresses(html: str) -> list[str]:
    return HREF.findall(html)


def _assert_no_personal_data_in_addresses(html: str, world: World) -> None:
    for address in _addresses(html):
        for name, id_number in world.id_numbers.items():
            assert id_number not in address
            assert name not in address


def test_my_grid_lists_the_buildings_without_reading_anyone(
    worker: TestClient, db_session: Session, world: World
) -> None:
    page = worker.get("/my/grid")

    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert "越秀区府前路 1 号" in page.text
    assert "3 residents" in page.text and "2 units" in page.text
    assert f"/my/grid/buildings/{world.building_id}?purpose=patrol-update" in page.text
    assert '<option value="patrol-update" selected>' in page.text
    assert entries(db_session) == []  # counts are not personal data


def test_a_building_shows_each_units_residents_masked_and_logs_the_look(
    worker: TestClient, db_session: Session, world: World
) -> None:
    page = worker.get(f"/my/grid/buildings/{world.building_id}", params={"purpose": PATROL})

    assert page.status_code == 200
    assert "张**" in page.text and "李**" in page.text and "王**" in page.text
    assert "张三丰" not in page.text and world.id_numbers["张三丰"] not in page.text
    assert "440104************" in page.text and "138****1234" in page.text
    assert "Unit 101" in page.text and "Unit 102" in page.text
    (entry,) = entries(db_session, action="list_persons")
    assert sorted(entry.subjects) == sorted(
        world.refs[name] for name in ("张三丰", "李秀英", "王小明")
    )
    _assert_no_personal_data_in_addresses(page.text, world)


def test_the_person_page_asks_for_a_purpose_before_reading(
    worker: TestClient, db_session: Session, world: World
) -> None:
    ref = world.refs["张三丰"]
    choose = worker.get(f"/persons/{ref}")
    shown = worker.get(f"/persons/{ref}", params={"purpose": PATROL})

    assert choose.status_code == 200 and "张**" not in choose.text
    assert 'name="purpose"' in choose.text
    assert shown.status_code == 200
    assert "张**" in shown.text and "138****1234" in shown.text
    assert f'action="/persons/{ref}/reveal"' in shown.text
    assert 'name="fields" value="name"' in shown.text
    assert 'value="marital_status"' not in shown.text
    assert [e.action for e in entries(db_session)] == ["read_person"]


def test_revealing_shows_the_values_once_and_logs_the_fields(
    worker: TestClient, db_session: Session, world: World
) -> None:
    ref = world.refs["张三丰"]
    response = worker.post(
        f"/persons/{ref}/reveal", data={"purpose": PATROL, "fields": ["name", "id_number"]}
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert "张三丰" in response.text and world.id_numbers["张三丰"] in response.text
    assert "Shown once" in response.text
    (reveal,) = entries(db_session, action="reveal")
    assert reveal.fields == ["name", "id_number"]
    # A later look at the page shows the masks again.
    again = worker.get(f"/persons/{ref}", params={"purpose": PATROL})
    assert "张三丰" not in again.text


def test_revealing_a_field_the_role_never_sees_is_refused_and_logged(
    worker: TestClient, db_session: Session, world: World
) -> None:
    response = worker.post(
        f"/persons/{world.refs['张三丰']}/reveal",
        data={"purpose": PATROL, "fields": ["marital_status"]},
    )
    assert response.status_code == 403
    assert "marital_status" in response.text
    assert [e.outcome for e in entries(db_session, action="reveal")] == ["denied"]


def test_a_person_outside_the_grid_is_a_404_page_and_a_denied_entry(
    worker: TestClient, db_session: Session, world: World
) -> None:
    response = worker.get(f"/persons/{world.refs['赵六']}", params={"purpose": PATROL})
    assert response.status_code == 404
    assert "赵" not in response.text
    (denied,) = entries(db_session, outcome="denied")
    assert denied.subjects == [world.refs["赵六"]]


def test_search_is_posted_and_finds_inside_the_scope(
    worker: TestClient, db_session: Session, world: World
) -> None:
    form = worker.get("/persons/search")
    found = worker.post(
        "/persons/search", data={"purpose": PATROL, "name": "张", "match": "prefix"}
    )
    meta = worker.post("/persons/search", data={"purpose": PATROL, "name": "%", "match": "prefix"})

    assert 'method="post" action="/persons/search"' in form.text
    assert found.status_code == 200
    assert "1 match" in found.text and "张**" in found.text
    assert f"/persons/{world.refs['张三丰']}?purpose=patrol-update" in found.text
    assert meta.status_code == 200 and "0 matches" in meta.text
    assert [e.detail["matches"] for e in entries(db_session, action="search_persons")] == [1, 0]
    _assert_no_personal_data_in_addresses(found.text, world)


def test_an_official_sees_the_territory_with_counts_then_a_grids_residents(
    app: FastAPI, client: TestClient, db_session: Session, world: World
) -> None:
    act_as(app, COMMUNITY_OFFICIAL)
    client.headers.update(BROWSER)
    territory = client.get("/my/territory")
    grid_link = f"/my/territory/grids/{GRID}?purpose=patrol-update"
    residents = client.get(grid_link)
    own_grid = client.get("/my/grid")

    assert territory.status_code == 200
    assert grid_link.replace("&", "&amp;") in territory.text
    row = re.search(rf'data-unit="{GRID}".*?</tr>', territory.text, re.S)
    assert row is not None and '<td class="num">4</td>' in row.group(0)
    assert entries(db_session, action="list_persons")[0].detail == {
        "policy_version": default_policy().version,
        "grid_code": GRID,
    }
    assert residents.status_code == 200 and "张**" in residents.text
    # An official without a grid of their own is sent to the territory.
    assert own_grid.url.path == "/my/territory"


def test_a_territory_outside_the_scope_is_not_found(
    app: FastAPI, client: TestClient, world: World
) -> None:
    act_as(app, COMMUNITY_OFFICIAL)
    response = client.get("/my/territory", params={"unit": "440104002"}, headers=BROWSER)
    assert response.status_code == 404


# ----------------------------------------------------------------------------- signed in


@pytest.fixture
def signed_in(database_url: str, db_session: Session) -> tuple[TestClient, World]:
    """A grid worker signed in through the real form, with her session and CSRF token."""
    settings: Settings = fast_settings(database_url)
    made = populate(db_session)
    make_account(db_session, settings, "zhangsijun", scopes=(GRID,))
    db_session.flush()
    client = TestClient(request_scoped_app(settings, db_session))
    sign_in_with_form(client, "zhangsijun")
    return client, made


def test_the_reveal_form_carries_its_csrf_token_and_needs_it(
    signed_in: tuple[TestClient, World], db_session: Session
) -> None:
    client, world = signed_in
    ref = world.refs["张三丰"]
    page = client.get(f"/persons/{ref}", params={"purpose": PATROL}, headers=BROWSER)
    token = csrf_in(page.text)

    forged = client.post(
        f"/persons/{ref}/reveal", data={"purpose": PATROL, "fields": ["name"]}, headers=BROWSER
    )
    genuine = client.post(
        f"/persons/{ref}/reveal",
        data={"purpose": PATROL, "fields": ["name"], "csrf_token": token},
        headers=BROWSER,
    )

    assert forged.status_code == 403
    assert genuine.status_code == 200 and "张三丰" in genuine.text
    reveals = entries(db_session, action="reveal")
    assert [(e.actor, e.fields) for e in reveals] == [("zhangsijun", ["name"])]


def test_the_search_form_needs_its_csrf_token(signed_in: tuple[TestClient, World]) -> None:
    client, _world = signed_in
    form = client.get("/persons/search", headers=BROWSER)
    # The layout leads a signed-in grid worker to her grid and to search.
    assert '<a href="/my/grid">' in form.text
    assert '<a href="/persons/search" aria-current="page">' in form.text
    data: dict[str, Any] = {"purpose": PATROL, "name": "张", "match": "prefix"}

    assert client.post("/persons/search", data=data, headers=BROWSER).status_code == 403
    answer = client.post(
        "/persons/search", data=data | {"csrf_token": csrf_in(form.text)}, headers=BROWSER
    )
    assert answer.status_code == 200 and "张**" in answer.text


def test_a_city_official_sees_the_districts_of_the_city(
    app: FastAPI, client: TestClient, world: World
) -> None:
    city = COMMUNITY_OFFICIAL.__class__(
        name="city-official", role="city_official", scopes=("4401",), kind="account"
    )
    act_as(app, city)
    page = client.get("/my/territory", headers=BROWSER)
    assert page.status_code == 200
    row = re.search(r'data-unit="440104".*?</tr>', page.text, re.S)
    assert row is not None and '<td class="num">5</td>' in row.group(0)  # residents
