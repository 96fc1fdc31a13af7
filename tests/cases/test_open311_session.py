"""Open311 authenticates each POST by its api_key, never by the session cookie: a browser
that is signed in to citygrid and posts to /open311/v2/ gets GeoReport's answer (a filed
request, or the spec's error list), not the session's CSRF refusal; and the cookie lends
the request no identity of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.cases.models import Case, CaseSource
from citygrid.kit.web import get_session
from tests.cases.conftest import DISPATCHER
from tests.cases.test_open311_conformance import tile_form
from tests.cases.test_pages import sign_in_as

BASE = "/open311/v2"


@pytest.fixture
def signed_in_browser(
    app: FastAPI, db_session: Session, city: Session, database_url: str
) -> Iterator[TestClient]:
    """A browser signed in as the district's dispatcher (a real session cookie); each
    request in its own savepoint, as in its own transaction in production."""

    def _request_session() -> Iterator[Session]:
        with db_session.begin_nested():
            yield db_session

    app.dependency_overrides[get_session] = _request_session
    with TestClient(app, headers={"Accept-Language": "en"}) as browser:
        sign_in_as(city, browser, database_url, DISPATCHER)
        yield browser


def test_a_signed_in_browser_files_an_open311_request_with_its_api_key(
    signed_in_browser: TestClient, city: Session
) -> None:
    response = signed_in_browser.post(f"{BASE}/requests.json", data=tile_form())

    assert response.status_code == 200, response.text
    [filed] = response.json()
    case = city.scalars(select(Case).where(Case.ref == filed["service_request_id"])).one()
    # Filed as the Open311 client's, not as the signed-in dispatcher's.
    assert case.source is CaseSource.OPEN311
    assert case.reporter_name != DISPATCHER.name


def test_without_a_valid_api_key_the_answer_is_the_spec_s_error_not_a_csrf_refusal(
    signed_in_browser: TestClient, city: Session
) -> None:
    missing = signed_in_browser.post(f"{BASE}/requests.json", data=tile_form(api_key=None))
    wrong = signed_in_browser.post(f"{BASE}/requests.xml", data=tile_form(api_key="not-a-key"))

    assert missing.status_code == 403
    [error] = missing.json()
    assert error["code"] == missing.status_code and "csrf" not in missing.text.lower()
    assert wrong.status_code == 403
    assert wrong.headers["content-type"].startswith("text/xml")
    assert b"<errors>" in wrong.content
    assert city.scalars(select(Case)).all() == []


def test_the_session_s_csrf_check_still_guards_everything_else(
    signed_in_browser: TestClient, city: Session
) -> None:
    response = signed_in_browser.post(
        "/api/v1/cases", json={"category": "C0201"}, headers={"Accept": "application/json"}
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
