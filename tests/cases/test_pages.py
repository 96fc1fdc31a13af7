"""The case pages as their users work them on a tablet: the command centre and its
dispatch panel, the case page, the list, the department's inbox and the grid worker's
verifications; every form, and every way of using one wrongly (a wrong state is a 409
page, another department's case a 403 page, a case outside the territory a 404 page,
and nothing changes)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.cases.models import Case, CaseState
from citygrid.kit.actor import Actor
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from citygrid.territory.locator import Locator
from tests.cases.conftest import (
    ADMIN,
    DISPATCHER,
    FAR_GRID,
    HOUSING,
    NEIGHBOUR,
    URBAN,
    ZHANG,
)
from tests.cases.helpers import count_transitions, file_case, step, tile_report
from tests.cases.photo_factories import png_image
from tests.fixtures_territory import STREET_CODES

ActAs = Callable[[Actor], None]
BROWSER = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en"}
SECOND_REPORTER = Actor(
    name="wang.fang", role="grid_worker", scopes=("440104001001002",), kind="account"
)
"""Another grid worker of the tile's grid, who reports the same tiles again."""
STREET2_OFFICIAL = Actor(
    name="street2.official", role="street_official", scopes=(STREET_CODES[1],), kind="account"
)


@pytest.fixture
def browser(client: TestClient) -> TestClient:
    client.headers.update(BROWSER)
    return client


@pytest.fixture
def tile(city: Session, locator: Locator) -> Case:
    """Zhang Sijun's broken tile, just reported."""
    return file_case(city, ZHANG, locator)


def dispatched(session: Session, case: Case, **fields: Any) -> Case:
    step(session, DISPATCHER, case, "register", **fields)
    return step(session, DISPATCHER, case, "dispatch")


def handled(session: Session, case: Case) -> Case:
    dispatched(session, case)
    step(session, HOUSING, case, "accept")
    return step(session, HOUSING, case, "feedback", note="three tiles replaced")


def form_post(client: TestClient, case: Case, action: str, **fields: str) -> Any:
    return client.post(
        f"/cases/{case.ref}/transitions",
        data={"action": action, **fields},
        follow_redirects=False,
    )


def state_of(session: Session, case: Case) -> CaseState:
    session.refresh(case)
    return case.state


def forms_on(html: str) -> list[str]:
    return re.findall(r'data-action="([a-z_]+)"', html)


# ============================================================================ command centre


def test_the_command_centre_shows_open_cases_in_feed_queue_and_map(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, locator: Locator
) -> None:
    far = file_case(city, DISPATCHER, locator, grid_code=FAR_GRID)
    act_as(DISPATCHER)
    page = browser.get("/command")
    assert page.status_code == 200
    assert "Command centre" in page.text
    assert f'data-ref="{tile.ref}"' in page.text and f'data-ref="{far.ref}"' in page.text
    assert "Floor tiles" in page.text or "floor tiles" in page.text.lower()
    assert 'id="case-points"' in page.text and tile.ref in page.text
    assert "/static/js/command.js" in page.text
    assert "<script>" not in page.text  # CSP: no inline script
    # The queue names the reported case; no case is open in the panel yet.
    assert f'href="/command?case={tile.ref}"' in page.text
    assert forms_on(page.text) == []


def test_an_official_of_another_street_sees_only_her_street(
    browser: TestClient, act_as: ActAs, tile: Case
) -> None:
    act_as(STREET2_OFFICIAL)
    page = browser.get("/command")
    assert page.status_code == 200
    assert tile.ref not in page.text
    assert browser.get(f"/command?case={tile.ref}").status_code == 404
    assert browser.get(f"/command/panel/{tile.ref}").status_code == 404


def test_grid_workers_and_departments_have_no_command_centre(
    browser: TestClient, act_as: ActAs, city: Session
) -> None:
    for actor in (ZHANG, HOUSING, ADMIN):
        act_as(actor)
        page = browser.get("/command")
        assert page.status_code == 403
        assert "command centre is for dispatchers" in page.text


def test_the_panel_of_a_reported_case_offers_register_and_reject_with_duplicates(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, locator: Locator
) -> None:
    again = file_case(city, SECOND_REPORTER, locator)
    act_as(DISPATCHER)
    panel = browser.get(f"/command/panel/{again.ref}")
    assert panel.status_code == 200
    assert "<html" not in panel.text  # a fragment, for the script
    assert forms_on(panel.text) == ["register", "reject"]
    assert "Registration criterion" in panel.text
    assert f'<option value="{tile.ref}">' in panel.text  # the earlier report, nearby
    assert "1 open case of the same kind nearby" in panel.text
    assert 'name="next" value="/command?case=' + again.ref in panel.text


def test_registering_and_dispatching_from_the_panel(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    act_as(DISPATCHER)
    registered = form_post(browser, tile, "register", note="", next=f"/command?case={tile.ref}")
    assert registered.status_code == 303
    assert registered.headers["location"] == f"/command?case={tile.ref}&done=register"
    assert state_of(city, tile) is CaseState.REGISTERED

    page = browser.get(registered.headers["location"])
    assert "The case is registered." in page.text
    assert forms_on(page.text) == ["dispatch"]
    # The routed department is chosen already.
    assert re.search(r'<option value="housing-construction" selected>', page.text)

    sent = form_post(
        browser,
        tile,
        "dispatch",
        department="housing-construction",
        priority="high",
        note="",
        next=f"/command?case={tile.ref}",
    )
    assert sent.status_code == 303
    assert state_of(city, tile) is CaseState.DISPATCHED
    assert tile.department == "housing-construction" and tile.deadline_at is not None


def test_rejecting_as_a_duplicate_from_the_panel(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, locator: Locator
) -> None:
    again = file_case(city, SECOND_REPORTER, locator)
    act_as(DISPATCHER)
    response = form_post(
        browser,
        again,
        "reject",
        reason="duplicate",
        duplicate_of=tile.ref,
        note="",
        next="/command",
    )
    assert response.status_code == 303, response.text
    assert state_of(city, again) is CaseState.REJECTED
    assert again.duplicate_of == tile.id


def test_rejecting_without_saying_why_is_refused_and_changes_nothing(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    act_as(DISPATCHER)
    before = count_transitions(city)
    response = form_post(browser, tile, "reject", reason="not_meeting_criterion", note=" ")
    assert response.status_code == 422
    assert "Some of the input was not accepted" in response.text
    assert "note" in response.text
    assert state_of(city, tile) is CaseState.REPORTED
    assert count_transitions(city) == before


def test_a_form_with_an_unknown_value_names_the_field(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    act_as(DISPATCHER)
    response = form_post(browser, tile, "register", priority="whenever")
    assert response.status_code == 422
    assert "priority" in response.text
    assert state_of(city, tile) is CaseState.REPORTED


def test_an_action_the_state_does_not_allow_is_a_409_page(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    act_as(DISPATCHER)
    response = form_post(browser, tile, "dispatch")
    assert response.status_code == 409
    assert "This step is not possible in the case's current state" in response.text
    assert "A case that is reported cannot take the action dispatch." in response.text
    assert state_of(city, tile) is CaseState.REPORTED


def test_a_case_outside_the_territory_is_a_404_page_for_reading_and_acting(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    act_as(STREET2_OFFICIAL)
    assert browser.get(f"/cases/{tile.ref}").status_code == 404
    act_as(NEIGHBOUR)
    assert browser.get(f"/cases/{tile.ref}").status_code == 404
    response = form_post(browser, tile, "register")
    assert response.status_code == 404
    assert "Page not found" in response.text
    assert state_of(city, tile) is CaseState.REPORTED


def test_unknown_case_and_fixed_paths_under_cases(
    browser: TestClient, act_as: ActAs, city: Session
) -> None:
    act_as(DISPATCHER)
    assert browser.get("/cases/AAAAAAAAAAAAAAAA").status_code == 404
    # Short words are not case references: /cases/new belongs to the intake pages.
    assert browser.get("/cases/new").status_code in (404, 200)
    assert "No case has this id" not in browser.get("/cases/new").text


# ============================================================================ the case page


def test_the_case_page_shows_details_criteria_deadline_and_history(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    dispatched(city, tile, note="meets the criterion")
    act_as(ZHANG)
    page = browser.get(f"/cases/{tile.ref}")
    assert page.status_code == 200
    assert "Three pavement tiles broken" in page.text
    assert "12 Jiefang Road" in page.text
    assert "Registration criterion" in page.text and "Closing criterion" in page.text
    assert "Deadline" in page.text and "case-deadline" in page.text
    assert "data-case-point" in page.text and f'data-lat="{tile.lat}"' in page.text
    # The history: who (by role), when, and the notes.
    for words in (
        "Reported",
        "Register",
        "Dispatch",
        "Command centre dispatcher",
        "meets the criterion",
    ):
        assert words in page.text
    assert "zhang.sijun" not in page.text and "dispatch.yuexiu" not in page.text
    assert forms_on(page.text) == []  # nothing for the grid worker to do now


def test_the_case_page_offers_only_this_users_actions(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    dispatched(city, tile)
    act_as(HOUSING)
    assert forms_on(browser.get(f"/cases/{tile.ref}").text) == ["accept", "return"]
    act_as(URBAN)
    assert forms_on(browser.get(f"/cases/{tile.ref}").text) == []
    act_as(DISPATCHER)
    assert forms_on(browser.get(f"/cases/{tile.ref}").text) == []


def test_the_case_page_shows_the_reporters_photos(
    app: FastAPI,
    settings: Settings,
    browser: TestClient,
    act_as: ActAs,
    city: Session,
    tmp_path: Path,
) -> None:
    app.state.settings = settings.model_copy(update={"media_dir": tmp_path / "media"})
    act_as(ZHANG)
    report = {key: str(value) for key, value in tile_report().items()}
    filed = browser.post(
        "/api/v1/cases",
        data=report,
        files=[("photos", ("IMG_0001.jpg", png_image(), "image/png"))],
        headers={"Accept": "application/json"},
    )
    assert filed.status_code == 201, filed.text
    ref = filed.json()["id"]
    act_as(DISPATCHER)
    [photo] = browser.get(f"/api/v1/cases/{ref}", headers={"Accept": "application/json"}).json()[
        "photos"
    ]

    page = browser.get(f"/cases/{ref}")

    assert page.status_code == 200
    assert f'src="{photo["thumbnail_url"]}"' in page.text
    assert f'href="{photo["url"]}"' in page.text
    assert browser.get(photo["thumbnail_url"]).headers["content-type"].startswith("image/")


def test_another_department_acting_from_the_case_page_is_a_403_page(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    dispatched(city, tile)
    act_as(URBAN)
    before = count_transitions(city)
    response = form_post(browser, tile, "accept")
    assert response.status_code == 403
    assert "The case is with another department." in response.text
    assert state_of(city, tile) is CaseState.DISPATCHED
    assert count_transitions(city) == before


def test_a_next_address_off_the_site_is_ignored(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    act_as(DISPATCHER)
    response = form_post(browser, tile, "register", next="https://evil.example/")
    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{tile.ref}?done=register"


# ============================================================================ the list


def test_the_list_filters_by_state_overdue_and_territory(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, locator: Locator
) -> None:
    far = file_case(city, DISPATCHER, locator, grid_code=FAR_GRID)
    late = file_case(city, ZHANG, locator)
    step(city, DISPATCHER, late, "register", now=utcnow() - timedelta(days=60))
    step(city, DISPATCHER, late, "dispatch", now=utcnow() - timedelta(days=60))
    act_as(DISPATCHER)

    every = browser.get("/cases")
    assert all(case.ref in every.text for case in (tile, far, late))
    reported = browser.get("/cases", params={"state": "reported"})
    assert tile.ref in reported.text and late.ref not in reported.text
    overdue = browser.get("/cases", params={"overdue": "yes"})
    assert late.ref in overdue.text and tile.ref not in overdue.text
    assert "row--overdue" in overdue.text
    street1 = browser.get("/cases", params={"grid": STREET_CODES[0]})
    assert tile.ref in street1.text and far.ref not in street1.text

    act_as(STREET2_OFFICIAL)
    theirs = browser.get("/cases")
    assert far.ref in theirs.text and tile.ref not in theirs.text


@pytest.mark.parametrize(
    ("params", "field"),
    [({"state": "lost"}, "state"), ({"overdue": "maybe"}, "overdue"), ({"grid": "4401"}, "grid")],
)
def test_a_bad_filter_is_a_clear_422(
    browser: TestClient, act_as: ActAs, city: Session, params: dict[str, str], field: str
) -> None:
    act_as(DISPATCHER)
    response = browser.get("/cases", params=params)
    assert response.status_code == 422
    assert f'<span class="code">{field}</span>' in response.text


# ============================================================================ the inbox


def test_the_inbox_lists_the_departments_cases_soonest_deadline_first(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, locator: Locator
) -> None:
    dispatched(city, tile)
    late = file_case(city, ZHANG, locator)
    step(city, DISPATCHER, late, "register", now=utcnow() - timedelta(days=60))
    step(city, DISPATCHER, late, "dispatch", now=utcnow() - timedelta(days=60))
    act_as(HOUSING)
    page = browser.get("/inbox")
    assert page.status_code == 200
    assert page.text.index(late.ref) < page.text.index(tile.ref)  # overdue first
    assert "work-item--overdue" in page.text and "1 overdue" in page.text
    assert forms_on(page.text) == ["accept", "return", "accept", "return"]


def test_accepting_and_reporting_back_from_the_inbox(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    dispatched(city, tile)
    act_as(HOUSING)
    accepted = form_post(browser, tile, "accept", note="", next="/inbox")
    assert accepted.status_code == 303
    assert accepted.headers["location"] == "/inbox?done=accept"
    assert state_of(city, tile) is CaseState.HANDLING
    assert forms_on(browser.get("/inbox").text) == ["feedback"]

    empty = form_post(browser, tile, "feedback", note="", next="/inbox")
    assert empty.status_code == 422 and state_of(city, tile) is CaseState.HANDLING
    done = form_post(browser, tile, "feedback", note="three tiles replaced", next="/inbox")
    assert done.status_code == 303
    assert state_of(city, tile) is CaseState.HANDLED
    assert tile.ref not in browser.get("/inbox").text


def test_another_departments_inbox_does_not_hold_the_case(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    dispatched(city, tile)
    act_as(URBAN)
    page = browser.get("/inbox")
    assert page.status_code == 200 and tile.ref not in page.text
    assert "No case is waiting for your department." in page.text


def test_only_department_officers_have_an_inbox(
    browser: TestClient, act_as: ActAs, city: Session
) -> None:
    act_as(DISPATCHER)
    assert browser.get("/inbox").status_code == 403


# ============================================================================ verifications


def test_the_grid_worker_verifies_handled_cases_of_her_grid(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    handled(city, tile)
    act_as(NEIGHBOUR)
    assert tile.ref not in browser.get("/my/verifications").text
    act_as(ZHANG)
    page = browser.get("/my/verifications")
    assert page.status_code == 200
    assert tile.ref in page.text and forms_on(page.text) == ["verify"]
    assert "Closing criterion" in page.text

    refused = form_post(browser, tile, "verify", result="fail", note="", next="/my/verifications")
    assert refused.status_code == 422 and state_of(city, tile) is CaseState.HANDLED
    failed = form_post(
        browser,
        tile,
        "verify",
        result="fail",
        note="one tile still loose",
        next="/my/verifications",
    )
    assert failed.status_code == 303
    assert state_of(city, tile) is CaseState.HANDLING and tile.rework_count == 1


def test_passing_the_verification_closes_the_case(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    handled(city, tile)
    act_as(ZHANG)
    response = form_post(browser, tile, "verify", result="pass", note="", next="/my/verifications")
    assert response.headers["location"] == "/my/verifications?done=verify"
    assert state_of(city, tile) is CaseState.CLOSED
    assert "Nothing to verify." in browser.get(response.headers["location"]).text


def test_verifying_twice_is_a_409_page(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session
) -> None:
    handled(city, tile)
    act_as(ZHANG)
    form_post(browser, tile, "verify", result="pass")
    again = form_post(browser, tile, "verify", result="pass")
    assert again.status_code == 409


def test_only_grid_workers_verify(browser: TestClient, act_as: ActAs, city: Session) -> None:
    act_as(HOUSING)
    assert browser.get("/my/verifications").status_code == 403


# ============================================================================ signed in


def sign_in_as(session: Session, client: TestClient, database_url: str, actor: Actor) -> None:
    """A real account and web session for the actor, its cookie in the client."""
    from citygrid.access import sessions
    from tests.access.auth_factories import fast_settings, make_account

    settings = fast_settings(database_url)
    created = make_account(
        session,
        settings,
        actor.name,
        role=actor.role,
        scopes=actor.scopes,
        department=actor.department,
    )
    token = sessions.start_session(
        session, settings, account_id=created.account.id, client_address=None
    )
    session.flush()
    client.cookies.set("citygrid_session", token)


@pytest.mark.parametrize(
    ("actor", "link"),
    [(DISPATCHER, "/command"), (HOUSING, "/inbox"), (ZHANG, "/my/verifications")],
)
def test_the_layout_links_each_role_to_its_case_page(
    browser: TestClient,
    act_as: ActAs,
    city: Session,
    database_url: str,
    actor: Actor,
    link: str,
) -> None:
    sign_in_as(city, browser, database_url, actor)
    page = browser.get("/cases")
    assert page.status_code == 200
    assert f'href="{link}"' in page.text
    assert 'href="/cases" aria-current="page"' in page.text


def test_a_form_without_its_security_token_is_refused_and_changes_nothing(
    browser: TestClient, act_as: ActAs, city: Session, database_url: str, tile: Case
) -> None:
    # (act_as: each request in its own savepoint; the caller is the real session's.)
    sign_in_as(city, browser, database_url, DISPATCHER)
    refused = form_post(browser, tile, "register")
    assert refused.status_code == 403
    assert state_of(city, tile) is CaseState.REPORTED

    page = browser.get(f"/cases/{tile.ref}")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    accepted = form_post(browser, tile, "register", csrf_token=token.group(1))
    assert accepted.status_code == 303
    assert state_of(city, tile) is CaseState.REGISTERED
