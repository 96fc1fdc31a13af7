"""The reporter's contact on the case page: read through the access gateway for case
handling, masked, and in the access log; revealed in clear (POST, CSRF) only for roles
whose policy allows it, and absent for roles that may never see it."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session

from citygrid.access.policy import default_policy
from citygrid.cases.models import Case
from citygrid.kit.actor import Actor
from citygrid.territory.locator import Locator
from tests.access.gateway_factories import entries
from tests.cases.conftest import DISPATCHER, URBAN, ZHANG
from tests.cases.helpers import file_case
from tests.cases.test_pages import sign_in_as
from tests.fixtures_territory import DISTRICT_CODE

ActAs = Callable[[Actor], None]
BROWSER = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en"}
CALLER = {"name": "王小明", "phone": "13800138000"}
CITY_OFFICIAL = Actor(name="city.official", role="city_official", scopes=("4401",))
"""Sees every case of the city, but never a reporter (hidden in the policy)."""
FAMILY_PLANNING = Actor(
    name="officer.family",
    role="department_officer",
    department="family-planning",
    scopes=(DISTRICT_CODE,),
)
"""A department whose policy hides the reporter."""


@pytest.fixture
def browser(client: TestClient) -> TestClient:
    client.headers.update(BROWSER)
    return client


@pytest.fixture
def hotline_case(city: Session, locator: Locator) -> Case:
    """A call to the hotline about the broken tile, with the caller's name and phone."""
    return file_case(city, DISPATCHER, locator, reporter_contact=CALLER)


def reveal(client: TestClient, case: Case, *fields: str, **extra: str) -> Response:
    return client.post(
        f"/cases/{case.ref}/reporter/reveal",
        data={"purpose": "case-handling", "fields": list(fields), **extra},
    )


def test_the_dispatcher_sees_the_caller_masked_and_the_look_is_logged(
    browser: TestClient, act_as: ActAs, hotline_case: Case, city: Session
) -> None:
    act_as(DISPATCHER)

    page = browser.get(f"/cases/{hotline_case.ref}")

    assert page.status_code == 200
    assert "Reporter's contact" in page.text
    assert re.search(r'data-reporter-field="name">王\*\*<', page.text)
    assert re.search(r'data-reporter-field="phone">138\*\*\*\*8000<', page.text)
    assert "13800138000" not in page.text and "王小明" not in page.text
    # She may reveal it: the form posts to the page route with the purpose.
    assert f'action="/cases/{hotline_case.ref}/reporter/reveal"' in page.text
    assert 'name="fields" value="phone"' in page.text
    (entry,) = entries(city, action="read_case_reporter")
    assert (entry.outcome, entry.purpose) == ("allowed", "case-handling")
    assert entry.subjects == [f"case:{hotline_case.ref}"]
    assert entry.fields == ["case_reporter"]


def test_revealing_shows_the_contact_in_clear_and_logs_the_fields(
    browser: TestClient, act_as: ActAs, hotline_case: Case, city: Session
) -> None:
    act_as(DISPATCHER)

    page = reveal(browser, hotline_case, "name", "phone")

    assert page.status_code == 200
    text = page.text
    assert 'data-reporter-field="name">王小明<' in text
    assert 'data-reporter-field="phone">13800138000<' in text
    assert "Shown in clear for case handling" in text
    assert f'action="/cases/{hotline_case.ref}/reporter/reveal"' not in text  # all shown
    (entry,) = entries(city, action="reveal_case_reporter")
    assert (entry.outcome, entry.purpose) == ("allowed", "case-handling")
    assert entry.subjects == [f"case:{hotline_case.ref}"]
    assert sorted(entry.fields) == ["reporter_name", "reporter_phone"]
    # The fields revealed are exactly those of the field class case_reporter.
    policy = default_policy()
    assert {policy.class_of_field[name] for name in entry.fields} == {"case_reporter"}


def test_only_the_phone_may_be_revealed(
    browser: TestClient, act_as: ActAs, hotline_case: Case, city: Session
) -> None:
    act_as(DISPATCHER)

    text = reveal(browser, hotline_case, "phone").text
    assert 'data-reporter-field="phone">13800138000<' in text
    assert "王小明" not in text
    (entry,) = entries(city, action="reveal_case_reporter")
    assert entry.fields == ["reporter_phone"]


def test_a_department_officer_sees_it_masked_and_may_not_reveal_it(
    browser: TestClient, act_as: ActAs, hotline_case: Case, city: Session
) -> None:
    act_as(URBAN)
    page = browser.get(f"/cases/{hotline_case.ref}")

    assert page.status_code == 200
    assert re.search(r'data-reporter-field="phone">138\*\*\*\*8000<', page.text)
    assert f'action="/cases/{hotline_case.ref}/reporter/reveal"' not in page.text

    refused = reveal(browser, hotline_case, "phone")

    assert refused.status_code == 403
    assert "13800138000" not in refused.text
    (denied,) = entries(city, action="reveal_case_reporter")
    assert denied.outcome == "denied"
    assert denied.fields == ["reporter_phone"]


def test_the_grid_worker_sees_it_masked_without_a_reveal_button(
    browser: TestClient, act_as: ActAs, hotline_case: Case, city: Session
) -> None:
    act_as(ZHANG)
    page = browser.get(f"/cases/{hotline_case.ref}")
    assert re.search(r'data-reporter-field="name">王\*\*<', page.text)
    assert f'action="/cases/{hotline_case.ref}/reporter/reveal"' not in page.text


@pytest.mark.parametrize("actor", [CITY_OFFICIAL, FAMILY_PLANNING], ids=["city", "family"])
def test_nothing_about_the_reporter_for_a_role_whose_level_is_hidden(
    browser: TestClient, act_as: ActAs, hotline_case: Case, city: Session, actor: Actor
) -> None:
    act_as(actor)

    page = browser.get(f"/cases/{hotline_case.ref}")

    assert page.status_code == 200
    assert "Three pavement tiles broken" in page.text  # the case itself is there
    for trace in ("Reporter", "reporter", "王**", "138****8000", "王小明", "13800138000"):
        assert trace not in page.text
    # Nothing was read, so nothing was logged (not even a refusal).
    assert entries(city, action="read_case_reporter") == []


def test_a_case_without_a_contact_reads_nothing(
    browser: TestClient, act_as: ActAs, city: Session, locator: Locator
) -> None:
    case = file_case(city, ZHANG, locator)
    act_as(DISPATCHER)
    page = browser.get(f"/cases/{case.ref}")
    assert page.status_code == 200 and "Reporter's contact" not in page.text
    assert entries(city, action="read_case_reporter") == []


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"purpose": "case-handling"}, "fields"),
        ({"purpose": "case-handling", "fields": ["address"]}, "fields"),
        ({"fields": ["phone"]}, "purpose"),
    ],
)
def test_a_reveal_form_without_fields_or_purpose_is_a_clear_422(
    browser: TestClient,
    act_as: ActAs,
    hotline_case: Case,
    city: Session,
    data: dict[str, object],
    field: str,
) -> None:
    act_as(DISPATCHER)
    response = browser.post(f"/cases/{hotline_case.ref}/reporter/reveal", data=data)
    assert response.status_code == 422
    assert f'<span class="code">{field}' in response.text
    assert "13800138000" not in response.text
    assert entries(city, action="reveal_case_reporter") == []


def test_the_reveal_form_needs_the_sessions_security_token(
    browser: TestClient, act_as: ActAs, hotline_case: Case, city: Session, database_url: str
) -> None:
    sign_in_as(city, browser, database_url, DISPATCHER)
    refused = reveal(browser, hotline_case, "phone")
    assert refused.status_code == 403
    assert "13800138000" not in refused.text
    assert entries(city, action="reveal_case_reporter") == []

    page = browser.get(f"/cases/{hotline_case.ref}")
    form = re.search(r'<form[^>]*/reporter/reveal".*?</form>', page.text, re.S)
    assert form is not None
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.group(0))
    assert token is not None
    shown = reveal(browser, hotline_case, "phone", csrf_token=token.group(1))
    assert 'data-reporter-field="phone">13800138000<' in shown.text
