"""The map in a real browser: Debian's Chromium, driven by Playwright, against a live server.

A uvicorn server runs in a background thread on a free local port, over a SQLite file
holding the mini city and a few registry rows. Screenshots go to ``CITYGRID_SCREENSHOTS``
(a directory) when it is set, else to a pytest temporary directory ("screens").
Without /usr/bin/chromium these tests are skipped, except in CI, where they fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from citygrid.kit.db import unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import Settings
from tests.browser import DEADLINE_SECONDS, PHONE, TABLET, open_page, require_chromium
from tests.fixtures_territory import MINI_GRID_CODES
from tests.live_server import serve
from tests.web.city import EXPECTED, FULL_GRID, populate

pytestmark = pytest.mark.browser


@dataclass
class LiveServer:
    """A running app: its base URL and the app itself (to change its settings)."""

    url: str
    app: FastAPI


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The app served by uvicorn on a free local port."""
    require_chromium()
    from citygrid.app import create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'citygrid.sqlite3'}"
    upgrade(url)
    with unit_of_work(url) as session:
        populate(session)
    app = create_app(Settings(database_url=url, demo_mode=True))

    with serve(app) as running:
        yield LiveServer(url=running.url, app=app)


@pytest.fixture(scope="module")
def live_server(server: LiveServer) -> str:
    """The base URL of the running app."""
    return server.url


def _wait_for_paths(page: Any, selector: str, count: int) -> None:
    page.wait_for_function(
        "([selector, count]) => document.querySelectorAll(selector).length === count",
        arg=[selector, count],
        timeout=DEADLINE_SECONDS * 1000,
    )


def test_a_grid_worker_finds_a_grid_on_the_map(
    live_server: str, chromium: Any, screens: Path
) -> None:
    page, watch = open_page(chromium, viewport=TABLET)
    page.goto(f"{live_server}/")
    # Leaflet draws one SVG path per unit: 10 grids, 4 communities, 2 streets.
    _wait_for_paths(page, "path.cg-grid", len(MINI_GRID_CODES))
    _wait_for_paths(page, "path.cg-community", 4)
    _wait_for_paths(page, "path.cg-street", 2)
    assert page.locator("#map").get_attribute("data-state") == "ready"
    assert page.locator(".map__fallback").count() == 0
    page.screenshot(path=screens / "map-zh.png", full_page=True)

    page.click(f'path[data-code="{FULL_GRID}"]')
    panel = page.locator("#grid-panel")
    panel.locator("h2", has_text="府前社区第1网格").wait_for()
    for key, count in EXPECTED.items():
        assert panel.locator(f'dd[data-count="{key}"]').inner_text() == str(count), key
    assert panel.locator("dt").all_inner_texts() == ["楼栋", "房屋", "住户", "居民", "部件"]
    page.screenshot(path=screens / "map-zh-grid-selected.png")

    panel.locator("a", has_text="打开网格页面").click()
    page.wait_for_url(f"{live_server}/grids/{FULL_GRID}")
    _wait_for_paths(page, "path.cg-grid", 1)
    _wait_for_paths(page, "path.cg-neighbour", 2)  # the rest of its community
    assert page.locator('tr[data-count="residents"] td').inner_text() == str(EXPECTED["residents"])
    page.screenshot(path=screens / "grid-zh.png", full_page=True)

    page.click('.lang-switch a[lang="en"]')
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert page.url == f"{live_server}/grids/{FULL_GRID}"
    assert page.locator("h2#counts-heading").inner_text() == "What the grid holds"
    assert page.locator('tr[data-component="manhole_cover"] th').inner_text() == "Manhole cover"
    _wait_for_paths(page, "path.cg-grid", 1)
    page.screenshot(path=screens / "grid-en.png", full_page=True)

    page.click("nav.nav-main a")
    _wait_for_paths(page, "path.cg-grid", len(MINI_GRID_CODES))
    assert page.locator("h1").inner_text() == "Map of Yuexiu District"
    page.screenshot(path=screens / "map-en.png", full_page=True)
    watch.assert_clean()


def test_a_grid_can_be_chosen_with_the_keyboard(live_server: str, chromium: Any) -> None:
    page, watch = open_page(chromium, viewport=TABLET)
    page.goto(f"{live_server}/")
    _wait_for_paths(page, "path.cg-grid", len(MINI_GRID_CODES))
    page.focus(f'path[data-code="{MINI_GRID_CODES[5]}"]')
    page.keyboard.press("Enter")
    page.locator("#grid-panel h2", has_text="光塔社区第1网格").wait_for()
    watch.assert_clean()


def test_the_skip_link_is_first_and_visible_on_focus(live_server: str, chromium: Any) -> None:
    page, watch = open_page(chromium, viewport=TABLET)
    page.goto(f"{live_server}/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.getAttribute('href')")
    assert focused == "#main"
    box = page.locator(".skip-link").bounding_box()
    assert box is not None and box["y"] >= 0
    watch.assert_clean()


def test_on_a_phone_the_panel_comes_below_the_map(
    live_server: str, chromium: Any, screens: Path
) -> None:
    page, watch = open_page(chromium, viewport=PHONE)
    page.goto(f"{live_server}/")
    _wait_for_paths(page, "path.cg-grid", len(MINI_GRID_CODES))
    map_box = page.locator("#map").bounding_box()
    panel_box = page.locator("#grid-panel").bounding_box()
    assert map_box is not None and panel_box is not None
    assert panel_box["y"] >= map_box["y"] + map_box["height"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for target in page.locator(".site-header a").all():
        box = target.bounding_box()
        assert box is not None and box["height"] >= 44, target.inner_text()
    page.screenshot(path=screens / "map-zh-phone.png", full_page=True)
    watch.assert_clean()


def test_without_javascript_the_list_still_leads_to_every_grid(
    live_server: str, chromium: Any, screens: Path
) -> None:
    page, watch = open_page(chromium, viewport=TABLET, javascript=False)
    page.goto(f"{live_server}/")
    assert page.locator(".map__fallback").is_visible()
    assert page.locator(".unit-list a[href^='/grids/']").count() == len(MINI_GRID_CODES)
    page.click("text=北京街道")  # the street table row opens the street's list
    page.locator(f"a[href='/grids/{FULL_GRID}']").click()
    assert page.locator('tr[data-count="buildings"] td').inner_text() == str(EXPECTED["buildings"])
    page.goto(f"{live_server}/")
    page.screenshot(path=screens / "map-zh-no-js.png", full_page=True)
    watch.assert_clean()


def test_an_unknown_grid_shows_the_not_found_page(
    live_server: str, chromium: Any, screens: Path
) -> None:
    page, watch = open_page(chromium, viewport=TABLET)
    response = page.goto(f"{live_server}/grids/440104009009009")
    assert response is not None and response.status == 404
    assert page.locator("h1").inner_text() == "页面不存在"
    page.screenshot(path=screens / "not-found-zh.png", full_page=True)
    page.click("text=返回地图")
    _wait_for_paths(page, "path.cg-grid", len(MINI_GRID_CODES))
    # The 404 itself is the point of this page: only it may fail.
    assert [entry for entry in watch.failed_requests if "440104009009009" not in entry] == []
    assert watch.outside_requests == []


def test_a_tile_url_in_the_settings_adds_a_base_map(server: LiveServer, chromium: Any) -> None:
    # A tile "server" on this host (any image will do) keeps the test off the network.
    settings = server.app.state.settings
    tiles = f"{server.url}/static/img/logo.svg?z={{z}}&x={{x}}&y={{y}}"
    server.app.state.settings = settings.model_copy(update={"map_tile_url": tiles})
    try:
        page, watch = open_page(chromium, viewport=TABLET)
        page.goto(f"{server.url}/")
        _wait_for_paths(page, "path.cg-grid", len(MINI_GRID_CODES))
        page.locator("img.leaflet-tile").first.wait_for()
        watch.assert_clean()
    finally:
        server.app.state.settings = settings


def test_when_the_map_data_fails_the_page_says_so(live_server: str, chromium: Any) -> None:
    page, watch = open_page(chromium, viewport=TABLET)
    page.route(
        "**/api/v1/territory/440104/grids.geojson",
        lambda route: route.fulfill(status=503, json={"error": {"code": "unavailable"}}),
    )
    page.goto(f"{live_server}/")
    page.locator("#map[data-state='failed']").wait_for()
    assert page.locator(".map__status").inner_text() == "无法加载地图数据。"
    assert page.locator(".unit-list a[href^='/grids/']").count() == len(MINI_GRID_CODES)
    assert any("citygrid map" in message for message in watch.console_errors)
    assert watch.outside_requests == []
