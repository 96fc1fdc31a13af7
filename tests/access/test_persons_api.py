"""Personal data over the JSON API, as department systems and tablets call it: the paths
other tools depend on, masks, purpose, consent, reveal, search, and a log entry that commits
exactly when the data leaves."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.access import consent, persons_api
from citygrid.access.policy import default_policy
from citygrid.app import create_app
from citygrid.audit import service as audit_service
from citygrid.kit.clock import local_today
from citygrid.kit.db import dispose_engines, unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import Settings
from tests.access.gateway_factories import (  # noqa: F401 - registry_fields_only is a fixture
    CIVIL_AFFAIRS,
    CLERK,
    GRID,
    GRID_WORKER,
    OTHER_GRID,
    PUBLIC_SECURITY,
    World,
    act_as,
    entries,
    populate,
    registry_fields_only,
)

PATROL = "patrol-update"
ENGLISH = {"Accept-Language": "en"}


pytestmark = pytest.mark.usefixtures("registry_fields_only")


@pytest.fixture
def world(db_session: Session) -> World:
    made = populate(db_session)
    # Release the setup's savepoint: a request that fails rolls back only its own work.
    db_session.commit()
    return made


@pytest.fixture
def worker(app: FastAPI, client: TestClient) -> TestClient:
    act_as(app, GRID_WORKER)
    client.headers.update(ENGLISH)
    return client


def _names(body: dict[str, Any]) -> list[str]:
    return sorted(item["name"] for item in body["items"])


# ----------------------------------------------------------------------------- lists


def test_the_grid_workers_list_is_masked_and_not_cached(worker: TestClient, world: World) -> None:
    response = worker.get(f"/api/v1/grids/{GRID}/persons", params={"purpose": PATROL})

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["total"] == 4 and len(body["items"]) == 4
    assert _names(body) == ["张**", "李**", "王**", "百*****"]
    zhang = next(i for i in body["items"] if i["ref"] == world.refs["张三丰"])
    assert zhang["id_number"] == "440104************"
    assert zhang["mobile"] == "138****1234"
    assert "marital_status" not in zhang
    assert body["field_classes"] == ["identity", "contact", "household_registration"]
    assert body["consent_required"] is False


def test_public_security_gets_the_same_list_in_clear(
    app: FastAPI, client: TestClient, world: World
) -> None:
    act_as(app, PUBLIC_SECURITY)
    body = client.get(
        f"/api/v1/grids/{GRID}/persons", params={"purpose": "public-security-duty"}
    ).json()
    assert _names(body) == ["张三丰", "李秀英", "王小明", "百分%之_百"]


def test_a_lists_log_entry_names_every_person_in_it(
    worker: TestClient, db_session: Session, world: World
) -> None:
    response = worker.get(f"/api/v1/grids/{GRID}/persons", params={"purpose": PATROL})

    (entry,) = entries(db_session, action="list_persons")
    assert sorted(entry.subjects) == sorted(item["ref"] for item in response.json()["items"])
    assert entry.request_id == response.headers["x-request-id"]
    assert entry.client_address == "203.0.113.7"
    assert entry.role == "grid_worker" and entry.scope == [GRID]
    assert entry.fields == ["identity", "contact", "household_registration"]
    assert entry.detail == {"policy_version": default_policy().version, "grid_code": GRID}


def test_paging_and_the_other_place_lists(worker: TestClient, world: World) -> None:
    page = worker.get(
        f"/api/v1/grids/{GRID}/persons", params={"purpose": PATROL, "limit": 3, "offset": 3}
    ).json()
    building = worker.get(
        f"/api/v1/buildings/{world.building_id}/persons", params={"purpose": PATROL}
    ).json()
    unit = worker.get(
        f"/api/v1/units/{world.unit_ids['102']}/persons", params={"purpose": PATROL}
    ).json()
    household = worker.get(
        f"/api/v1/households/{world.household_id}/persons", params={"purpose": PATROL}
    ).json()

    assert (page["total"], len(page["items"]), page["offset"]) == (4, 1, 3)
    assert _names(building) == ["张**", "李**", "王**"]
    assert _names(unit) == ["王**"]
    assert _names(household) == ["张**", "李**"]


def test_limits_are_checked(worker: TestClient, world: World) -> None:
    response = worker.get(
        f"/api/v1/grids/{GRID}/persons", params={"purpose": PATROL, "limit": 5000}
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "limit"


# ----------------------------------------------------------------------------- scope


def test_another_grids_person_is_404_and_a_denied_entry_is_committed(
    worker: TestClient, db_session: Session, world: World
) -> None:
    outside = worker.get(f"/api/v1/persons/{world.refs['赵六']}", params={"purpose": PATROL})
    missing = worker.get("/api/v1/persons/nobodyxxxxxxxxxx", params={"purpose": PATROL})
    grid = worker.get(f"/api/v1/grids/{OTHER_GRID}/persons", params={"purpose": PATROL})

    assert outside.status_code == missing.status_code == grid.status_code == 404
    assert outside.json() == missing.json()
    assert outside.headers["cache-control"] == "no-store"
    denied = entries(db_session, outcome="denied")
    assert [(e.action, e.detail["reason"]) for e in denied] == [
        ("read_person", "out_of_scope"),
        ("read_person", "not_found"),
        ("list_persons", "out_of_scope"),
    ]
    assert denied[0].subjects == [world.refs["赵六"]]
    assert denied[0].request_id == outside.headers["x-request-id"]


def test_an_id_number_is_never_a_person_id(worker: TestClient, world: World) -> None:
    response = worker.get(
        f"/api/v1/persons/{world.id_numbers['张三丰']}", params={"purpose": PATROL}
    )
    assert response.status_code == 404


# ----------------------------------------------------------------------------- purpose


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({}, 400, "purpose_required"),
        ({"purpose": ""}, 400, "purpose_required"),
        ({"purpose": "curiosity"}, 400, "unknown_purpose"),
        ({"purpose": "public-security-duty"}, 403, "purpose_not_allowed"),
    ],
)
def test_the_purpose_is_required_known_and_allowed(
    worker: TestClient, world: World, params: dict[str, str], status: int, code: str
) -> None:
    for path in (f"/api/v1/grids/{GRID}/persons", f"/api/v1/persons/{world.refs['张三丰']}"):
        response = worker.get(path, params=params)
        assert response.status_code == status
        error = response.json()["error"]
        assert error["code"] == code
        assert "purpose" in error["message"] or "purpose" in str(error["details"])


def test_the_catalogue_of_purposes_names_each_legal_basis(client: TestClient) -> None:
    response = client.get("/api/v1/purposes", headers={"Accept-Language": "zh-CN"})

    assert response.status_code == 200
    items = {item["code"]: item for item in response.json()["items"]}
    assert items["patrol-update"]["legal_basis"] == "statutory"
    assert items["allowance-review"]["legal_basis"] == "consent"
    assert items["allowance-review"]["name"] == "低保审核"
    assert items["allowance-review"]["name_en"] == "Subsistence allowance review"
    assert response.json()["policy_version"] == default_policy().version


# ----------------------------------------------------------------------------- consent


def test_consent_decides_what_a_consent_based_purpose_may_read(
    app: FastAPI, client: TestClient, db_session: Session, world: World
) -> None:
    act_as(app, CIVIL_AFFAIRS)
    path = f"/api/v1/persons/{world.refs['张三丰']}"
    params = {"purpose": "allowance-review"}

    without = client.get(path, params=params)
    granted = consent.grant_consent(
        db_session,
        CLERK,
        person_ref=world.refs["张三丰"],
        requester_department="civil-affairs",
        purpose="allowance-review",
        field_classes=["identity", "contact", "household_registration", "marital"],
        valid_from=local_today(),
        valid_until=local_today() + timedelta(days=30),
        obtained_via="paper",
    )
    with_consent = client.get(path, params=params)
    consent.revoke_consent(db_session, CLERK, consent_id=granted.id)
    revoked = client.get(path, params=params)

    assert without.status_code == 403
    assert without.json()["error"]["code"] == "consent_required"
    assert without.json()["error"]["details"] == {
        "person": world.refs["张三丰"],
        "purpose": "allowance-review",
        "requester_department": "civil-affairs",
        "field_classes": ["identity", "contact", "household_registration", "marital"],
    }
    assert with_consent.status_code == 200
    assert with_consent.json()["person"]["name"] == "张**"
    assert with_consent.json()["withheld"] == []
    assert revoked.status_code == 403


# ----------------------------------------------------------------------------- reveal


def test_reveal_answers_the_fields_in_clear_once(
    worker: TestClient, db_session: Session, world: World
) -> None:
    response = worker.post(
        f"/api/v1/persons/{world.refs['张三丰']}/reveal",
        json={"purpose": PATROL, "fields": ["id_number", "mobile"]},
    )

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "ref": world.refs["张三丰"],
        "purpose": PATROL,
        "fields": {"id_number": world.id_numbers["张三丰"], "mobile": "13812341234"},
    }
    (entry,) = entries(db_session, action="reveal")
    assert entry.fields == ["id_number", "mobile"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"purpose": PATROL, "fields": ["marital_status"]}, 403, "field_hidden"),
        ({"purpose": "case-handling", "fields": ["name"]}, 403, "reveal_not_allowed"),
        ({"purpose": PATROL, "fields": ["salary"]}, 400, "unknown_field"),
        ({"fields": ["name"]}, 400, "purpose_required"),
        ({"purpose": PATROL, "fields": []}, 422, "validation_failed"),
    ],
)
def test_reveal_refusals(
    worker: TestClient, db_session: Session, world: World, body: Any, status: int, code: str
) -> None:
    response = worker.post(f"/api/v1/persons/{world.refs['张三丰']}/reveal", json=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert entries(db_session, action="reveal", outcome="allowed") == []


# ----------------------------------------------------------------------------- no way around


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"fields": "name"}, 403, "name"),
        ({"fields": "ref,id_number"}, 403, "id_number"),
        ({"sort": "name"}, 403, "name"),
        ({"sort": "-id_number"}, 403, "id_number"),
        ({"filter": "marital_status:married"}, 403, "marital_status"),
        ({"sort": "salary"}, 400, "salary"),
    ],
)
def test_no_parameter_gets_around_a_mask(
    worker: TestClient, world: World, params: dict[str, str], status: int, field: str
) -> None:
    response = worker.get(f"/api/v1/grids/{GRID}/persons", params={"purpose": PATROL, **params})
    assert response.status_code == status
    assert field in response.json()["error"]["message"]


def test_filtering_by_a_field_shown_as_stored_works(worker: TestClient, world: World) -> None:
    body = worker.get(
        f"/api/v1/grids/{GRID}/persons",
        params={"purpose": PATROL, "filter": "population_type:migrant", "fields": "sex"},
    ).json()
    assert body["items"] == [{"ref": world.refs["王小明"], "grid_code": GRID, "sex": "M"}]


# ----------------------------------------------------------------------------- search


def test_search_by_query_or_body_finds_inside_the_scope_only(
    worker: TestClient, db_session: Session, world: World
) -> None:
    by_name = worker.get(
        "/api/v1/persons/search", params={"purpose": PATROL, "name": "张", "match": "prefix"}
    )
    by_number = worker.post(
        "/api/v1/persons/search",
        json={"purpose": PATROL, "id_number": world.id_numbers["王小明"]},
    )
    outside = worker.post(
        "/api/v1/persons/search", json={"purpose": PATROL, "id_number": world.id_numbers["赵六"]}
    )

    assert [i["ref"] for i in by_name.json()["items"]] == [world.refs["张三丰"]]
    assert by_name.json()["items"][0]["name"] == "张**"
    assert [i["ref"] for i in by_number.json()["items"]] == [world.refs["王小明"]]
    assert outside.status_code == 200 and outside.json()["total"] == 0
    assert [e.detail["matches"] for e in entries(db_session, action="search_persons")] == [1, 1, 0]


@pytest.mark.parametrize(
    "name", ["%", "_", "'", "--", "张%", "' OR '1'='1", "'; DELETE FROM persons; --", "\\"]
)
def test_sql_meta_characters_in_a_search_are_text(
    worker: TestClient, world: World, name: str
) -> None:
    for match in ("exact", "prefix"):
        response = worker.get(
            "/api/v1/persons/search", params={"purpose": PATROL, "name": name, "match": match}
        )
        assert response.status_code == 200
        assert response.json()["total"] == 0
    still = worker.get("/api/v1/grids/" + GRID + "/persons", params={"purpose": PATROL})
    assert still.json()["total"] == 4


def test_a_search_without_terms_names_them(worker: TestClient, world: World) -> None:
    response = worker.get("/api/v1/persons/search", params={"purpose": PATROL})
    assert response.status_code == 422
    assert {d["field"] for d in response.json()["error"]["details"]} == {"name", "id_number"}


# ----------------------------------------------------------------------------- together


def test_a_failure_after_the_read_leaves_no_entry_claiming_it(
    app: FastAPI, db_session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_body: Any) -> bytes:
        raise RuntimeError("the answer could not be encoded")

    monkeypatch.setattr(persons_api, "_encode", broken)
    act_as(app, GRID_WORKER)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/api/v1/grids/{GRID}/persons", params={"purpose": PATROL})

    assert response.status_code == 500
    assert entries(db_session, action="list_persons") == []


def test_when_the_log_entry_cannot_be_written_no_data_leaves(
    app: FastAPI, db_session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> int:
        raise RuntimeError("the access log is unavailable")

    monkeypatch.setattr(audit_service, "append", refuse)
    act_as(app, GRID_WORKER)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/api/v1/grids/{GRID}/persons", params={"purpose": PATROL})

    assert response.status_code == 500
    assert "张" not in response.text and world.refs["张三丰"] not in response.text


def test_when_the_commit_fails_no_data_leaves(
    app: FastAPI, db_session: Session, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail() -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(db_session, "commit", fail)
    act_as(app, GRID_WORKER)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/api/v1/grids/{GRID}/persons", params={"purpose": PATROL})

    assert response.status_code == 500
    assert world.refs["张三丰"] not in response.text


@pytest.fixture
def committed_city(tmp_path: Path) -> Iterator[tuple[FastAPI, World, str]]:
    """The app on its own SQLite file, with real request transactions (no test rollback)."""
    url = f"sqlite:///{tmp_path / 'city.sqlite3'}"
    upgrade(url)
    with unit_of_work(url) as session:
        made = populate(session)
    yield create_app(Settings(database_url=url, demo_mode=True)), made, url
    dispose_engines()


def test_a_denied_entry_survives_the_failed_request_and_an_allowed_one_commits(
    committed_city: tuple[FastAPI, World, str],
) -> None:
    app, world, url = committed_city
    act_as(app, GRID_WORKER)
    with TestClient(app) as client:
        denied = client.get(f"/api/v1/persons/{world.refs['赵六']}", params={"purpose": PATROL})
        allowed = client.get(f"/api/v1/persons/{world.refs['张三丰']}", params={"purpose": PATROL})

    assert (denied.status_code, allowed.status_code) == (404, 200)
    with unit_of_work(url) as session:
        logged = [(e.action, e.outcome, e.request_id) for e in entries(session)]
    assert logged == [
        ("read_person", "denied", denied.headers["x-request-id"]),
        ("read_person", "allowed", allowed.headers["x-request-id"]),
    ]


def test_the_api_never_mentions_a_residents_data_in_its_errors(
    worker: TestClient, world: World
) -> None:
    response = worker.get(
        "/api/v1/persons/search",
        params={"purpose": "public-security-duty", "id_number": world.id_numbers["张三丰"]},
    )
    assert response.status_code == 403
    assert world.id_numbers["张三丰"] not in response.text


def test_concurrent_looks_on_sqlite_all_succeed_and_are_all_logged(
    committed_city: tuple[FastAPI, World, str],
) -> None:
    """Each look reads, then writes its entry: on SQLite a deferred transaction whose snapshot
    another writer made stale cannot write ("database is locked"); the gateway's requests
    take the write lock first instead."""
    app, _world, url = committed_city
    act_as(app, GRID_WORKER)
    statuses: list[int] = []

    def look(worker: int) -> None:
        with TestClient(app) as client:
            for offset in range(8):
                response = client.get(
                    f"/api/v1/grids/{GRID}/persons",
                    params={"purpose": PATROL, "limit": 1, "offset": (worker + offset) % 4},
                )
                statuses.append(response.status_code)

    threads = [threading.Thread(target=look, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 48
    with unit_of_work(url) as session:
        assert len(entries(session, action="list_persons", outcome="allowed")) == 48
