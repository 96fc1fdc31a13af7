"""The demo's death story, as a visitor replays it: public security registers the death of
the seed grid's allowance recipient, and within a second the allowance is suspended, the
grid worker has a task and the access log names who was told and why."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from citygrid.demo.builder import build_demo_database
from citygrid.demo.seed import SEED_GRID_CODE
from citygrid.demo.story import run_death_story
from citygrid.kit.db import get_session_factory
from citygrid.kit.settings import Settings, get_settings
from citygrid.kit.worker import worker_for
from tests.demo.conftest import SEED, SMALL_RESIDENTS, DemoBuild, invoke
from tests.scratch_postgres import scratch_postgres

SUBJECT = re.compile(r"death of resident ([0-9a-f]{16})")


@pytest.fixture
def demo_copy(
    sqlite_demo: DemoBuild, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A copy of the SQLite demo (the shared one is only read); the command's settings stay
    in this test."""
    assert sqlite_demo.path is not None
    copy = tmp_path / "story.sqlite3"
    shutil.copy(sqlite_demo.path, copy)
    for name in ("CITYGRID_DATABASE_URL", "CITYGRID_DEMO_MODE", "CITYGRID_DEMO_FEEDS"):
        monkeypatch.setenv(name, "")
    monkeypatch.delenv("CITYGRID_DATABASE_URL")
    yield copy
    get_settings.cache_clear()


def test_the_death_story_replays_in_the_demo(demo_copy: Path) -> None:
    first = invoke(["demo", "story", "death", "--db", str(demo_copy)])

    assert first.exit_code == 0, first.output
    output = first.output
    assert "active -> suspended" in output and "(pending review)" in output
    assert re.search(
        rf"verify_death\s+for the grid worker of {SEED_GRID_CODE} \(zhangsijun", output
    )
    assert re.search(r"civil-affairs\s+allowance\s+allowance suspended pending review", output)
    assert f"grid {SEED_GRID_CODE}" in output
    assert "purpose life-event-notification (statutory)" in output
    seconds = float(re.search(r"told within ([0-9.]+) s", output).group(1))  # type: ignore[union-attr]
    assert seconds < 1.0
    # No name or ID number is printed: only the opaque reference.
    assert not re.search(r"\d{17}[\dX]", output)

    again = invoke(["demo", "story", "death", "--db", str(demo_copy)])

    assert again.exit_code == 0, again.output
    # The first resident is dead now: the story takes the next recipient.
    assert SUBJECT.search(output).group(1) != SUBJECT.search(again.output).group(1)  # type: ignore[union-attr]


def test_the_story_needs_a_demo_database(tmp_path: Path, demo_copy: Path) -> None:
    result = invoke(["demo", "story", "death", "--db", str(tmp_path / "missing.sqlite3")])

    assert result.exit_code == 2
    assert "build-demo" in result.output


@pytest.fixture
def postgres_story_demo() -> Iterator[str]:
    """A small demo of its own on a fresh PostgreSQL database (the story changes it)."""
    with scratch_postgres("citygrid_story") as url:
        build_demo_database(url, residents=SMALL_RESIDENTS, seed=SEED)
        yield url


def test_the_death_story_on_postgresql_with_the_embedded_worker(postgres_story_demo: str) -> None:
    settings = Settings(database_url=postgres_story_demo, demo_mode=True)
    worker = worker_for(settings)
    worker.start()
    try:
        story = run_death_story(get_session_factory(postgres_story_demo), deadline=5.0)
    finally:
        worker.stop()

    assert story.complete
    assert story.seconds is not None and story.seconds < 1.0
    assert (story.allowance_before, story.allowance_after) == ("active", "suspended")
    assert ("verify_death", SEED_GRID_CODE) in [(kind, who) for kind, who, _due in story.tasks]
    told = {item.told: item for item in story.told}
    assert told["civil-affairs"].fields == ["allowance"]
    assert told["civil-affairs"].legal_basis == "statutory"
    assert told[f"grid {SEED_GRID_CODE}"].purpose == "life-event-notification"
