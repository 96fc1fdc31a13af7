"""The seed's tile story as a visitor replays it (``citygrid demo story tile``), and the
simulated case feed that keeps the command centre busy, on copies of the demo."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.cases.models import Case, CaseEventRecord, CaseState, CaseTransition
from citygrid.demo.builder import build_demo_database
from citygrid.demo.case_feed import run_once
from citygrid.demo.case_story import run_tile_story
from citygrid.demo.seed import SEED_GRID_CODE
from citygrid.kit.db import get_session_factory, make_engine
from citygrid.kit.settings import Settings, get_settings, sqlite_url
from tests.demo.conftest import SEED, SMALL_RESIDENTS, DemoBuild, invoke
from tests.scratch_postgres import scratch_postgres

STEP = re.compile(r"^\s+(\d)\. \d\d:\d\d:\d\d UTC \(\+[0-9.]+ s\)  (.+)$", re.MULTILINE)


@pytest.fixture
def demo_copy(
    sqlite_demo: DemoBuild, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A copy of the SQLite demo (the shared one is only read), photos in the test's dir."""
    assert sqlite_demo.path is not None
    copy = tmp_path / "tile.sqlite3"
    shutil.copy(sqlite_demo.path, copy)
    monkeypatch.setenv("CITYGRID_MEDIA_DIR", str(tmp_path / "media"))
    monkeypatch.setenv("CITYGRID_DEMO_MODE", "true")
    monkeypatch.setenv("CITYGRID_DEMO_FEEDS", "false")
    monkeypatch.delenv("CITYGRID_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield copy
    get_settings.cache_clear()


def test_the_tile_story_runs_the_whole_loop(demo_copy: Path, tmp_path: Path) -> None:
    result = invoke(["demo", "story", "tile", "--db", str(demo_copy)])

    assert result.exit_code == 0, result.output
    steps = [text for _n, text in STEP.findall(result.output)]
    assert len(steps) == 9, result.output
    assert steps[0].startswith("zhangsijun reported case ") and "C0201 floor tiles" in steps[0]
    assert SEED_GRID_CODE in steps[0] and "解放北路" in steps[0] and "1 photo" in steps[0]
    assert "case.created" in steps[1]
    assert "registered it" in steps[2]
    assert re.search(r"dispatched it to housing-construction, deadline \d{4}-\d\d-\d\d", steps[3])
    assert "accepted it" in steps[4] and "answered" in steps[5]
    assert "verified on site: pass, closed on time" in steps[6]
    assert "satisfaction 5/5" in steps[7]
    assert "Evaluation of housing-construction" in result.output
    assert re.search(r"closure rate \d+\.\d %", result.output)
    assert "is evaluated" in result.output
    ref = re.search(r"reported case (\S+):", steps[0]).group(1)  # type: ignore[union-attr]
    engine = make_engine(sqlite_url(demo_copy))
    try:
        with Session(engine) as session:
            case = session.scalars(select(Case).where(Case.ref == ref)).one()
            assert case.state is CaseState.EVALUATED and case.closed_on_time
            assert case.grid_code == SEED_GRID_CODE
    finally:
        engine.dispose()
    # The photo went through the real photo path into the media directory.
    assert list((tmp_path / "media").rglob("*.jpg"))


def test_the_tile_story_needs_a_demo_database(tmp_path: Path, demo_copy: Path) -> None:
    result = invoke(["demo", "story", "tile", "--db", str(tmp_path / "missing.sqlite3")])

    assert result.exit_code == 2
    assert "build-demo" in result.output


def _counts(session: Session) -> tuple[int, int, int]:
    return (
        session.scalar(select(func.count()).select_from(Case)) or 0,
        session.scalar(select(func.count()).select_from(CaseTransition)) or 0,
        session.scalar(select(func.count()).select_from(CaseEventRecord)) or 0,
    )


def _feed_files_and_advances(url: str) -> None:
    factory = get_session_factory(url)
    with factory() as session:
        cases, transitions, events = _counts(session)
        handled_in_seed = session.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.grid_code == SEED_GRID_CODE, Case.state == CaseState.HANDLED)
        )
    done = 0
    for _run in range(3):
        with factory() as session:
            done += run_once(session, seed=SEED)
            session.commit()
    with factory() as session:
        after = _counts(session)
        still_waiting = session.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.grid_code == SEED_GRID_CODE, Case.state == CaseState.HANDLED)
        )

    assert after[0] == cases + 3  # one new case a run
    assert after[1] >= transitions + 3 + 3  # its report, and the cases moved along
    assert after[2] > events  # the command centre's stream sees it all
    assert done >= 6
    assert still_waiting >= handled_in_seed  # zhangsijun's are left for her


def test_the_case_feed_files_and_advances_cases_on_sqlite(demo_copy: Path) -> None:
    _feed_files_and_advances(sqlite_url(demo_copy))


@pytest.fixture
def postgres_case_demo() -> Iterator[str]:
    """A small demo of its own on a fresh PostgreSQL database (the story changes it)."""
    with scratch_postgres("citygrid_cases") as url:
        build_demo_database(url, residents=SMALL_RESIDENTS, seed=SEED)
        yield url


def test_the_tile_story_and_the_case_feed_on_postgresql(
    postgres_case_demo: str, tmp_path: Path
) -> None:
    settings = Settings(database_url=postgres_case_demo, demo_mode=True, media_dir=tmp_path)
    story = run_tile_story(get_session_factory(postgres_case_demo), settings)

    assert story.complete
    assert story.department == "housing-construction"
    assert story.evaluation is not None
    assert any(item.key == "housing-construction" for item in story.evaluation.items)
    _feed_files_and_advances(postgres_case_demo)
