"""The death story in a real browser, in the demo: the demo city served with its embedded
worker, the grid worker signed in on a tablet; public security registers the death, and her
task list shows the verification task, masked, which she marks done."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from citygrid.demo.seed import SEED_GRID_WORKER
from citygrid.demo.story import run_death_story
from citygrid.kit.db import get_session_factory
from citygrid.kit.settings import DEMO_SECRET, Settings, sqlite_url
from tests.browser import (
    DEADLINE_SECONDS,
    TABLET,
    open_page,
    require_chromium,
)
from tests.demo.conftest import DemoBuild
from tests.live_server import serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_server(sqlite_demo: DemoBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A copy of the demo served with its embedded worker on a free local port."""
    require_chromium()
    from citygrid.app import create_app

    assert sqlite_demo.path is not None
    copy = tmp_path_factory.mktemp("story") / "demo.sqlite3"
    shutil.copy(sqlite_demo.path, copy)
    url = sqlite_url(copy)
    app = create_app(Settings(database_url=url, demo_mode=True), start_worker=True)
    with serve(app, lifespan="on") as running:
        yield url + "|" + running.url


def test_the_grid_worker_sees_and_completes_the_story_s_task(
    demo_server: str, chromium: Any, screens: Path
) -> None:
    url, base = demo_server.split("|")
    page: Any
    page, watch = open_page(chromium, viewport=TABLET)
    page.goto(f"{base}/signin?next=/my/tasks")
    page.fill("#username", SEED_GRID_WORKER)
    page.fill("#password", DEMO_SECRET)
    page.locator("main form button[type=submit]").first.click()
    page.wait_for_url(f"{base}/my/tasks")
    assert page.locator(".task-card").count() == 0

    story = run_death_story(get_session_factory(url), deadline=5.0)
    assert story.complete and story.seconds is not None and story.seconds < 1.0

    page.reload()
    card = page.locator(".task-card", has_text="核实死亡")
    card.wait_for(timeout=DEADLINE_SECONDS * 1000)
    text = card.inner_text()
    assert "**" in text  # the name masked
    assert "已死亡" in text or "死亡" in text
    page.screenshot(path=str(screens / "my-tasks-death-story.png"), full_page=True)

    card.get_by_role("button").click()
    page.wait_for_url(f"{base}/my/tasks?done=*")
    assert "已标记为完成" in page.inner_text("main")
    assert page.locator(".task-card", has_text="核实死亡").count() == 0
    watch.assert_clean()
