"""The layout's "Report a problem": staff who may file go to the staff form, visitors who
are not signed in to the public report page, and no one else sees it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.cases import service
from citygrid.kit.actor import Actor
from tests.cases.conftest import ADMIN, DISPATCHER, HOUSING, ZHANG
from tests.cases.test_pages import sign_in_as
from tests.fixtures_territory import STREET_CODES

ActAs = Callable[[Actor], None]
BROWSER = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en"}
STREET_OFFICIAL = Actor(
    name="street1.official", role="street_official", scopes=(STREET_CODES[0],), kind="account"
)
STAFF_LINK = '<a class="nav-main__report" href="/cases/new"'
PUBLIC_LINK = '<a class="nav-main__report" href="/report"'


@pytest.fixture
def browser(client: TestClient) -> TestClient:
    client.headers.update(BROWSER)
    return client


@pytest.mark.parametrize("actor", [ZHANG, DISPATCHER, STREET_OFFICIAL], ids=lambda a: a.role)
def test_staff_who_may_file_are_linked_to_the_staff_form(
    browser: TestClient, act_as: ActAs, city: Session, database_url: str, actor: Actor
) -> None:
    assert actor.role in service.INTAKE_ROLES
    sign_in_as(city, browser, database_url, actor)

    page = browser.get("/cases")

    assert page.status_code == 200
    assert STAFF_LINK in page.text and "Report a problem" in page.text
    assert PUBLIC_LINK not in page.text
    # The link leads to a form she may use.
    form = browser.get("/cases/new")
    assert form.status_code == 200
    assert f'{STAFF_LINK} aria-current="page"' in form.text
    assert 'href="/cases" aria-current="page"' not in form.text


@pytest.mark.parametrize("actor", [HOUSING, ADMIN], ids=lambda a: a.role)
def test_roles_that_may_not_file_have_no_report_link(
    browser: TestClient, act_as: ActAs, city: Session, database_url: str, actor: Actor
) -> None:
    assert actor.role not in service.INTAKE_ROLES
    sign_in_as(city, browser, database_url, actor)

    page = browser.get("/")

    assert page.status_code == 200
    assert "nav-main__report" not in page.text
    assert browser.get("/cases/new").status_code == 403


def test_visitors_are_linked_to_the_public_report_page(browser: TestClient, city: Session) -> None:
    page = browser.get("/")

    assert page.status_code == 200
    assert PUBLIC_LINK in page.text and STAFF_LINK not in page.text
    report = browser.get("/report")
    assert report.status_code == 200
    assert f'{PUBLIC_LINK} aria-current="page"' in report.text
