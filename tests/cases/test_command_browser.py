"""The command centre in a real browser (Debian's Chromium through Playwright) against a
live uvicorn server: a case filed through the API appears in the open feed within a second,
pushed by server-sent events, and the dispatcher registers and dispatches it from the panel.

Screenshots go to ``CITYGRID_SCREENSHOTS`` when it is set, else to a temporary directory.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from citygrid.access import sessions
from citygrid.access.models import Account
from citygrid.app import create_app
from citygrid.kit.db import unit_of_work
from tests.browser import TABLET, open_page, require_chromium
from tests.cases.helpers import tile_report
from tests.cases.live import DEADLINE, live_settings, prepare_database
from tests.live_server import Running, serve

pytestmark = pytest.mark.browser

FEED_WITHIN_SECONDS = 1.0


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Running, dict[str, str]]]:
    require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('command') / 'command.sqlite3'}"
    tokens = prepare_database(url)
    with serve(create_app(live_settings(url))) as running:
        yield running, tokens


def web_session_cookie(running: Running, username: str) -> dict[str, Any]:
    """A signed-in dispatcher's session cookie (the sign-in form is tested elsewhere)."""
    settings = running.app.state.settings
    with unit_of_work(settings.database_url) as session:
        account_id = session.scalar(select(Account.id).where(Account.username == username))
        assert account_id is not None
        token = sessions.start_session(
            session, settings, account_id=account_id, client_address="127.0.0.1"
        )
    return {"name": "citygrid_session", "value": token, "url": running.url}


def test_a_new_case_appears_in_the_feed_within_a_second_and_is_dispatched(
    live: tuple[Running, dict[str, str]], chromium: Any, screens: Path
) -> None:
    running, tokens = live
    page, watch = open_page(chromium, viewport=TABLET)
    page.context.add_cookies([web_session_cookie(running, "dispatcher")])
    page.goto(f"{running.url}/command")
    page.wait_for_selector("[data-feed][data-stream='open']", timeout=DEADLINE * 1000)
    assert page.locator("#case-map").get_attribute("data-state") == "ready"

    # The tile is reported (by the hotline, through the API) while the centre watches.
    response = httpx.post(
        f"{running.url}/api/v1/cases",
        json=tile_report(),
        headers={"Authorization": f"Bearer {tokens['dispatcher']}"},
        timeout=DEADLINE,
    )
    assert response.status_code == 201, response.text
    filed_at = time.monotonic()
    ref = response.json()["id"]
    item = page.locator(f"#case-feed li[data-ref='{ref}']")
    item.wait_for(timeout=FEED_WITHIN_SECONDS * 1000)
    assert time.monotonic() - filed_at <= FEED_WITHIN_SECONDS + 0.1
    assert "feed-item--new" in (item.get_attribute("class") or "")
    page.locator(f"path.cg-case--reported[data-ref='{ref}']").wait_for(timeout=DEADLINE * 1000)
    page.screenshot(path=screens / "command-zh-new-case.png", full_page=True)

    # Open it in the panel (no page load), register it, then dispatch it to the routed
    # department.
    item.locator("a").click()
    page.wait_for_selector(f"[data-panel][data-case='{ref}']", timeout=DEADLINE * 1000)
    page.locator("form[data-action='register'] button[type='submit']").click()
    page.wait_for_url(f"{running.url}/command?case={ref}&done=register")
    assert page.locator(".notice--done").count() == 1
    dispatch = page.locator("form[data-action='dispatch']")
    assert dispatch.locator("select[name='department']").input_value() == "housing-construction"
    page.screenshot(path=screens / "command-zh-dispatch-panel.png", full_page=True)
    dispatch.locator("button[type='submit']").click()
    page.wait_for_url(f"{running.url}/command?case={ref}&done=dispatch")

    case = httpx.get(
        f"{running.url}/api/v1/cases/{ref}",
        headers={"Authorization": f"Bearer {tokens['dispatcher']}"},
        timeout=DEADLINE,
    ).json()
    assert case["state"] == "dispatched"
    assert case["department"] == "housing-construction"
    # The reloaded page lists it as dispatched and keeps it on the map.
    page.locator(f"path.cg-case--dispatched[data-ref='{ref}']").wait_for(timeout=DEADLINE * 1000)
    page.wait_for_selector("[data-feed][data-stream='open']", timeout=DEADLINE * 1000)
    page.screenshot(path=screens / "command-zh-dispatched.png", full_page=True)
    watch.assert_clean()


def test_a_change_made_elsewhere_updates_the_open_centre(
    live: tuple[Running, dict[str, str]], chromium: Any, screens: Path
) -> None:
    running, tokens = live
    bearer = {"Authorization": f"Bearer {tokens['dispatcher']}"}
    ref = httpx.post(
        f"{running.url}/api/v1/cases", json=tile_report(), headers=bearer, timeout=DEADLINE
    ).json()["id"]
    page, watch = open_page(chromium, viewport=TABLET)
    page.context.add_cookies([web_session_cookie(running, "dispatcher")])
    page.goto(f"{running.url}/command")
    page.wait_for_selector("[data-feed][data-stream='open']", timeout=DEADLINE * 1000)
    page.locator(f"#case-feed li[data-ref='{ref}'][data-state='reported']").wait_for()

    httpx.post(
        f"{running.url}/api/v1/cases/{ref}/transitions",
        json={"action": "register"},
        headers=bearer,
        timeout=DEADLINE,
    )
    page.locator(f"#case-feed li[data-ref='{ref}'][data-state='registered']").wait_for(
        timeout=DEADLINE * 1000
    )
    page.locator(f"path.cg-case--registered[data-ref='{ref}']").wait_for(timeout=DEADLINE * 1000)
    watch.assert_clean()


def test_the_case_page_on_a_tablet(
    live: tuple[Running, dict[str, str]], chromium: Any, screens: Path
) -> None:
    running, tokens = live
    bearer = {"Authorization": f"Bearer {tokens['dispatcher']}"}
    ref = httpx.post(
        f"{running.url}/api/v1/cases", json=tile_report(), headers=bearer, timeout=DEADLINE
    ).json()["id"]
    page, watch = open_page(chromium, viewport=TABLET)
    page.context.add_cookies([web_session_cookie(running, "dispatcher")])
    page.goto(f"{running.url}/cases/{ref}")
    page.wait_for_selector("[data-case-point][data-map='ready']", timeout=DEADLINE * 1000)
    assert page.locator("form[data-action]").count() == 2  # register, reject
    page.screenshot(path=screens / "case-zh.png", full_page=True)
    watch.assert_clean()


def test_the_department_accepts_a_case_from_its_inbox(
    live: tuple[Running, dict[str, str]], chromium: Any, screens: Path
) -> None:
    running, tokens = live
    bearer = {"Authorization": f"Bearer {tokens['dispatcher']}"}
    ref = httpx.post(
        f"{running.url}/api/v1/cases", json=tile_report(), headers=bearer, timeout=DEADLINE
    ).json()["id"]
    for action in ("register", "dispatch"):
        httpx.post(
            f"{running.url}/api/v1/cases/{ref}/transitions",
            json={"action": action},
            headers=bearer,
            timeout=DEADLINE,
        ).raise_for_status()
    page, watch = open_page(chromium, viewport=TABLET)
    page.context.add_cookies([web_session_cookie(running, "housing-officer")])
    page.goto(f"{running.url}/lang/en?next=/inbox")
    item = page.locator(f"li.work-item[data-ref='{ref}']")
    page.screenshot(path=screens / "inbox-en.png", full_page=True)
    item.locator("form[data-action='accept'] button[type='submit']").click()
    page.wait_for_url(f"{running.url}/inbox?done=accept")
    assert page.locator(".notice--done").inner_text() == "You are handling the case now."
    assert page.locator(f"li.work-item[data-ref='{ref}'] form[data-action='feedback']").count() == 1
    watch.assert_clean()
