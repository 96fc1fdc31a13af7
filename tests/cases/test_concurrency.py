"""Concurrent writes on SQLite: requests and worker tasks that read and then write take turns
instead of failing with "database is locked"."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from citygrid.access.deps import current_actor
from citygrid.cases import repository, tasks
from citygrid.cases.models import Case
from citygrid.kit.actor import SYSTEM
from citygrid.kit.db import dispose_engines, unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings, sqlite_url
from citygrid.territory.locator import Locator
from citygrid.territory.service import import_feature_collection
from tests.cases.conftest import DISPATCHER, ZHANG
from tests.cases.helpers import file_case, step, tile_report
from tests.fixtures_territory import mini_city_collection
from tests.sqlite_writer import another_writer_commits

SUBMITS = 24


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[str]:
    """A SQLite file of this test's own: its requests commit for real."""
    url = sqlite_url(tmp_path / "concurrency.sqlite3")
    upgrade(url)
    with unit_of_work(url) as session:
        import_feature_collection(session, SYSTEM, collection=mini_city_collection())
    yield url
    dispose_engines()


def test_concurrent_reports_and_steps_all_succeed_on_sqlite(own_database: str) -> None:
    from citygrid.app import create_app

    app = create_app(Settings(database_url=own_database, demo_mode=True))
    app.dependency_overrides[current_actor] = lambda: DISPATCHER

    with TestClient(app) as client:

        def report(number: int) -> int:
            headers = {"Idempotency-Key": f"form-{number % (SUBMITS // 2)}-{uuid.uuid4().hex[:4]}"}
            created = client.post("/api/v1/cases", json=tile_report(), headers=headers)
            if created.status_code != 201:
                return created.status_code
            registered = client.post(
                f"/api/v1/cases/{created.json()['id']}/transitions", json={"action": "register"}
            )
            return registered.status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(report, range(SUBMITS)))

    assert statuses == [200] * SUBMITS
    with unit_of_work(own_database) as session:
        stored = session.scalar(
            select(func.count()).select_from(Case).where(Case.state == "registered")
        )
    assert stored == SUBMITS


def test_the_escalation_survives_a_writer_committing_after_its_read(
    own_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's escalation reads the overdue cases, then writes; the embedded worker's
    other tasks (the outbox, the access log's sequencer) write meanwhile. It holds the
    write lock from its read on, so another writer waits instead of making its write fail."""
    long_ago = utcnow() - timedelta(days=30)
    with unit_of_work(own_database) as session:
        locator = Locator.from_session(session)
        case = file_case(session, ZHANG, locator, now=long_ago, priority="urgent")
        step(session, DISPATCHER, case, "register", now=long_ago)
        step(session, DISPATCHER, case, "dispatch", now=long_ago)
    attempts: list[bool] = []
    read = repository.overdue

    def read_then_another_writer(*args: Any, **kwargs: Any) -> list[Case]:
        found = read(*args, **kwargs)
        attempts.append(another_writer_commits(own_database))
        return found

    monkeypatch.setattr(repository, "overdue", read_then_another_writer)

    with unit_of_work(own_database) as session:
        escalated = tasks.escalate_overdue_cases(session)

    assert escalated == 1
    assert attempts == [False]  # the lock was held: the other writer waits its turn
    with unit_of_work(own_database) as session:
        assert session.scalars(select(Case.escalated_at)).one() is not None
