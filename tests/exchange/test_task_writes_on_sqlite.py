"""Marking a task done on SQLite while another writer commits: the route reads the task and
then writes it, and a deferred transaction that has read cannot write after another
connection wrote (SQLite answers "database is locked" at once, whatever the busy timeout;
the demo's story test once failed so under load, the embedded worker writing). The route
holds the write lock from its first read, so the other writer waits its turn instead."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from citygrid.access.deps import current_actor
from citygrid.exchange import repository as exchange_repository
from citygrid.exchange.models import AssigneeKind, Task, TaskState
from citygrid.kit.actor import Actor
from citygrid.kit.db import dispose_engines, unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings, sqlite_url
from tests.exchange.story import GRID
from tests.fixtures_territory import import_mini_city
from tests.sqlite_writer import another_writer_commits

GRID_WORKER = Actor(name="zhangsijun", role="grid_worker", scopes=(GRID,))


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[str]:
    """A SQLite file of this test's own with an open verification task: requests commit."""
    url = sqlite_url(tmp_path / "tasks.sqlite3")
    upgrade(url)
    with unit_of_work(url) as session:
        import_mini_city(session)
        session.add(
            Task(
                assignee_kind=AssigneeKind.GRID,
                assignee=GRID,
                grid_code=GRID,
                kind="verify_death",
                due_at=utcnow() + timedelta(days=3),
            )
        )
    yield url
    dispose_engines()


@pytest.fixture
def writer_after_the_read(
    own_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[bool]]:
    """Another connection tries to commit right after the route has read the task: whether
    it could (True) or found the write lock held (False), per read."""
    attempts: list[bool] = []
    read = exchange_repository.visible_task

    def read_then_another_writer(*args: Any, **kwargs: Any) -> Task | None:
        found = read(*args, **kwargs)
        attempts.append(another_writer_commits(own_database))
        return found

    monkeypatch.setattr(exchange_repository, "visible_task", read_then_another_writer)
    yield attempts


def _stored(url: str) -> Task:
    with unit_of_work(url) as session:
        task = session.scalars(select(Task)).one()
        session.expunge(task)
        return task


@pytest.mark.parametrize(
    ("path", "send"),
    [
        ("/tasks/{id}/complete", lambda client, path: client.post(
            path, data={"back": "/my/tasks"}, headers={"Accept": "text/html"},
            follow_redirects=False,
        )),
        ("/api/v1/tasks/{id}/complete", lambda client, path: client.post(path)),
    ],
    ids=["page", "api"],
)  # fmt: skip
def test_a_task_is_marked_done_though_another_writer_wants_to_commit_meanwhile(
    own_database: str,
    writer_after_the_read: list[bool],
    path: str,
    send: Callable[[TestClient, str], Any],
) -> None:
    from citygrid.app import create_app

    task = _stored(own_database)
    app = create_app(Settings(database_url=own_database, demo_mode=True))
    app.dependency_overrides[current_actor] = lambda: GRID_WORKER

    with TestClient(app) as client:
        answer = send(client, path.format(id=task.id))

    assert answer.status_code in (200, 303), answer.text
    # The other writer met the lock the route held from its read on: it waits its turn.
    assert writer_after_the_read == [False]
    done = _stored(own_database)
    assert (done.state, done.done_by) == (TaskState.DONE, "zhangsijun")
    # Once the route committed, the other writer writes.
    assert another_writer_commits(own_database)
