"""The grid worker's intake page in a real browser (Debian's Chromium via Playwright) against
a live uvicorn server: she signs in, takes a photo, taps the place on the map of her grid,
picks the category and files the case, which lands with its photo in her grid."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from citygrid.access import accounts
from citygrid.cases.models import Case, CasePhoto
from citygrid.kit.actor import Actor
from citygrid.kit.db import unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import Settings
from tests.browser import (
    DEADLINE_SECONDS,
    PHONE,
    TABLET,
    open_page,
    require_chromium,
)
from tests.cases.photo_factories import camera_jpeg, files_under
from tests.fixtures_territory import MINI_GRID_CODES, import_mini_city, point_in_grid
from tests.live_server import serve

pytestmark = pytest.mark.browser

GRID = MINI_GRID_CODES[1]
PASSWORD = "tile story 2026"


@dataclass
class Live:
    """The running app: its URL, database and media directory."""

    url: str
    database_url: str
    media: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The app on a free local port over a SQLite file with the mini city and Zhang Sijun."""
    require_chromium()
    from citygrid.app import create_app

    root = tmp_path_factory.mktemp("intake-live")
    url = f"sqlite:///{root / 'citygrid.sqlite3'}"
    upgrade(url)
    settings = Settings(
        database_url=url,
        demo_mode=True,
        media_dir=root / "media",
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        password_hash_parallelism=1,
    )
    with unit_of_work(url) as session:
        import_mini_city(session)
        accounts.create_account(
            session,
            Actor(name="test-admin", role="admin"),
            settings=settings,
            username="zhangsijun",
            password=PASSWORD,
            role="grid_worker",
            scopes=(GRID,),
            display_name="张思君",
        )
    with serve(create_app(settings)) as running:
        yield Live(url=running.url, database_url=url, media=root / "media")


def _sign_in(page: Any, base: str) -> None:
    page.goto(f"{base}/signin?next=/cases/new")
    page.fill("#username", "zhangsijun")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/cases/new", timeout=DEADLINE_SECONDS * 1000)


def test_the_grid_worker_files_the_tile_with_a_photo_and_a_tap_on_the_map(
    live: Live, chromium: Any, screens: Path, tmp_path: Path
) -> None:
    page, watch = open_page(chromium, viewport=TABLET)
    photo = tmp_path / "IMG_2031.jpg"
    photo.write_bytes(camera_jpeg(size=(1200, 900)))
    _sign_in(page, live.url)

    # The map of her grid is drawn, the position button offered.
    page.wait_for_selector(".intake__map path", timeout=DEADLINE_SECONDS * 1000)
    assert page.is_visible("[data-intake-locate]")
    page.set_input_files("#photos", str(photo))
    page.wait_for_selector("[data-intake-previews] img", timeout=DEADLINE_SECONDS * 1000)
    # Tap the middle of the map, as she would once it is on her screen.
    page.locator(".intake__map").scroll_into_view_if_needed()
    box = page.locator(".intake__map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(
        "() => document.querySelector('#lat').value !== ''", timeout=DEADLINE_SECONDS * 1000
    )
    page.select_option("#category", "C0201")
    page.fill("#description", "Three pavement tiles broken in front of No. 12 Jiefang Road")
    page.check("input[name=priority][value=high]")
    page.screenshot(path=str(screens / "intake-grid-worker-tablet.png"), full_page=True)
    watch.assert_clean()

    with page.expect_navigation(timeout=DEADLINE_SECONDS * 1000):
        page.click(".intake__submit")

    assert "/cases/" in page.url and not page.url.endswith("/cases/new")
    ref = page.url.rsplit("/", 1)[1]
    with unit_of_work(live.database_url) as session:
        case = session.scalars(select(Case).where(Case.ref == ref)).one()
        photos = list(session.scalars(select(CasePhoto).where(CasePhoto.case_id == case.id)))
        assert case.grid_code == GRID
        assert case.category == "C0201" and case.priority.value == "high"
        assert case.source.value == "grid_worker"
        assert len(photos) == 1 and (photos[0].width, photos[0].height) == (1200, 900)
    assert len(files_under(live.media)) == 2
    page.context.close()


def test_the_intake_page_is_one_column_on_a_phone(live: Live, chromium: Any, screens: Path) -> None:
    page, watch = open_page(chromium, viewport=PHONE)
    _sign_in(page, live.url)
    page.wait_for_selector(".intake__map path", timeout=DEADLINE_SECONDS * 1000)

    lat = page.locator("#lat").bounding_box()
    lon = page.locator("#lon").bounding_box()
    submit = page.locator(".intake__submit").bounding_box()

    assert lon["y"] > lat["y"] + lat["height"] - 1  # stacked, not side by side
    assert submit["height"] >= 44
    page.screenshot(path=str(screens / "intake-grid-worker-phone.png"), full_page=True)
    wide = page.evaluate(
        """() => [...document.querySelectorAll('body *')]
            .filter((e) => !e.closest('.leaflet-container'))
            .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
            .map((e) => e.tagName + '.' + e.className + '#' + e.id).slice(0, 8)"""
    )
    assert wide == []
    watch.assert_clean()
    page.context.close()


def test_a_resident_reports_from_a_browser_without_javascript(
    live: Live, chromium: Any, screens: Path, tmp_path: Path
) -> None:
    page, watch = open_page(chromium, viewport=PHONE, javascript=False)
    photo = tmp_path / "drain.jpg"
    photo.write_bytes(camera_jpeg(size=(800, 600)))
    lon, lat = point_in_grid(GRID)
    page.goto(f"{live.url}/report")
    # What needs JavaScript is not offered without it.
    assert not page.is_visible("[data-intake-locate]")
    assert not page.is_visible("[data-intake-map]")

    page.set_input_files("#photos", str(photo))
    page.fill("#lat", f"{lat:.6f}")
    page.fill("#lon", f"{lon:.6f}")
    page.select_option("#category", "C0201")
    page.fill("#description", "Loose tiles by the bus stop")
    page.fill("#reporter_phone", "13900139000")
    page.screenshot(path=str(screens / "intake-public-report-phone.png"), full_page=True)
    with page.expect_navigation(timeout=DEADLINE_SECONDS * 1000):
        page.click(".intake__submit")

    reference = page.text_content("[data-tracking-reference]")
    assert reference
    page.screenshot(path=str(screens / "intake-public-report-done.png"), full_page=True)
    watch.assert_clean()
    with unit_of_work(live.database_url) as session:
        case = session.scalars(select(Case).where(Case.ref == reference.strip())).one()
        assert case.source.value == "citizen" and case.grid_code == GRID
        assert case.reporter_contact_phone == "13900139000"
    page.context.close()
