"""The case pages in a real browser (Debian's Chromium via Playwright) against a live uvicorn
server on a 768 x 1024 tablet: the department's officer reports the work done with a photo
from her inbox, the dispatcher reveals a caller's phone on the case page, and a grid
worker's header stays two rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from citygrid.access import accounts, sessions
from citygrid.app import create_app
from citygrid.cases.models import Case, CasePhoto, CaseState
from citygrid.kit.actor import SYSTEM
from citygrid.kit.db import unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.territory.locator import Locator
from tests.access.gateway_factories import entries
from tests.browser import DEADLINE_SECONDS, open_page, require_chromium
from tests.cases.conftest import DISPATCHER, HOUSING, ZHANG
from tests.cases.helpers import file_case, step
from tests.cases.live import PASSWORD, live_settings
from tests.cases.photo_factories import camera_jpeg
from tests.fixtures_territory import import_mini_city
from tests.live_server import serve

pytestmark = pytest.mark.browser

TABLET_PORTRAIT = {"width": 768, "height": 1024}
CALLER = {"name": "王小明", "phone": "13800138000"}
WAIT = DEADLINE_SECONDS * 1000


@dataclass
class Live:
    """The running app, its database, and the session cookies of the people."""

    url: str
    database_url: str
    cookies: dict[str, str]
    being_handled: str
    hotline: str


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app on a free local port over a SQLite file: the mini city, a case being handled
    by housing and construction, and a hotline case with the caller's contact."""
    require_chromium()
    root = tmp_path_factory.mktemp("case-pages-live")
    url = f"sqlite:///{root / 'citygrid.sqlite3'}"
    upgrade(url)
    settings = live_settings(url).model_copy(update={"media_dir": root / "media"})
    cookies: dict[str, str] = {}
    with unit_of_work(url) as session:
        import_mini_city(session)
        session.flush()
        for actor in (ZHANG, DISPATCHER, HOUSING):
            created = accounts.create_account(
                session,
                SYSTEM,
                settings=settings,
                username=actor.name,
                password=PASSWORD,
                role=actor.role,
                scopes=actor.scopes,
                department=actor.department,
            )
            session.flush()
            # Signed in as by the sign-in form (whose second factor is tested elsewhere).
            cookies[actor.role] = sessions.start_session(
                session, settings, account_id=created.account.id, client_address=None
            )
        locator = Locator.from_session(session)
        tiles = file_case(session, ZHANG, locator)
        step(session, DISPATCHER, tiles, "register")
        step(session, DISPATCHER, tiles, "dispatch")
        step(session, HOUSING, tiles, "accept")
        hotline = file_case(session, DISPATCHER, locator, reporter_contact=CALLER)
        refs = (tiles.ref, hotline.ref)
    with serve(create_app(settings)) as running:
        yield Live(running.url, url, cookies, *refs)


def signed_in(chromium: Any, live: Live, role: str) -> tuple[Any, Any]:
    page, watch = open_page(chromium, viewport=TABLET_PORTRAIT)
    page.context.add_cookies(
        [{"name": "citygrid_session", "value": live.cookies[role], "url": live.url}]
    )
    return page, watch


def test_the_officer_reports_the_work_done_with_a_photo_from_her_inbox(
    live: Live, chromium: Any, tmp_path: Path
) -> None:
    photo = tmp_path / "IMG_0412.jpg"
    photo.write_bytes(camera_jpeg(size=(1024, 768)))
    page, watch = signed_in(chromium, live, "department_officer")
    page.goto(f"{live.url}/inbox")
    form = page.locator(f"form[id='{live.being_handled}-feedback']")

    form.locator("textarea[name=note]").fill("Three tiles replaced and grouted")
    form.locator("input[type=file][name=photos]").set_input_files(str(photo))
    with page.expect_navigation(timeout=WAIT):
        form.locator("button[type=submit]").click()

    assert page.url.endswith("/inbox?done=feedback")
    with unit_of_work(live.database_url) as session:
        case = session.scalars(select(Case).where(Case.ref == live.being_handled)).one()
        stages = list(session.scalars(select(CasePhoto.stage).where(CasePhoto.case_id == case.id)))
        assert case.state is CaseState.HANDLED
        assert [stage.value for stage in stages] == ["feedback"]
    page.goto(f"{live.url}/cases/{live.being_handled}")
    thumbnail = page.locator(".case-photos img").first
    thumbnail.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => document.querySelector('.case-photos img').naturalWidth > 0", timeout=WAIT
    )
    assert thumbnail.is_visible()
    watch.assert_clean()
    page.context.close()


def test_the_dispatcher_reveals_the_callers_phone_on_the_case_page(
    live: Live, chromium: Any
) -> None:
    page, watch = signed_in(chromium, live, "dispatcher")
    page.goto(f"{live.url}/cases/{live.hotline}")
    phone = page.locator("[data-reporter-field=phone]")
    assert phone.text_content() == "138****8000"

    page.locator(".case-reporter__reveal input[value=name]").uncheck()
    with page.expect_navigation(timeout=WAIT):
        page.locator(".case-reporter__reveal button").click()

    assert page.locator("[data-reporter-field=phone]").text_content() == "13800138000"
    assert page.locator("[data-reporter-field=name]").count() == 0
    with unit_of_work(live.database_url) as session:
        [entry] = entries(session, action="reveal_case_reporter")
        assert entry.fields == ["reporter_phone"] and entry.actor == DISPATCHER.name
    watch.assert_clean()
    page.context.close()


def test_a_grid_workers_header_is_two_rows_on_a_tablet(live: Live, chromium: Any) -> None:
    page, watch = signed_in(chromium, live, "grid_worker")
    page.goto(f"{live.url}/my/verifications")

    brand = page.locator(".brand").bounding_box()
    account = page.locator(".account-box").bounding_box()
    links = page.locator(".nav-main a")
    rows = {round(links.nth(index).bounding_box()["y"]) for index in range(links.count())}
    report = page.locator(".nav-main a[href='/cases/new']")

    assert report.is_visible()
    # Brand and account share the first row; the links all fit on the second.
    assert abs(account["y"] + account["height"] / 2 - (brand["y"] + brand["height"] / 2)) < 12
    assert len(rows) == 1 and min(rows) > brand["y"] + brand["height"] - 1
    assert page.locator(".site-header").bounding_box()["height"] < 130
    watch.assert_clean()
    page.context.close()
