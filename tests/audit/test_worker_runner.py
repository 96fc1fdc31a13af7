"""The periodic-task runner (``citygrid.kit.worker``) the sequencer and the outbox run on.

Each task's work here appends access-log entries under an actor name of its own, so that
what committed can be counted from outside the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from citygrid.audit import service as audit
from citygrid.audit.models import AuditEntry
from citygrid.audit.signing import SigningKeyMissing
from citygrid.kit.db import unit_of_work
from citygrid.kit.settings import Settings
from citygrid.kit.worker import PeriodicTask, TaskStatus, Worker, collect_tasks

DEADLINE_SECONDS = 15.0
FAKE_ID_NUMBER = "11010519491231002X"  # a text a careless task might put in an error


def committed(url: str, actor: str) -> int:
    """How many entries of ``actor`` are committed."""
    with unit_of_work(url) as session:
        stmt = select(func.count()).select_from(AuditEntry).where(AuditEntry.actor == actor)
        return int(session.execute(stmt).scalar_one())


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds (or fail after the deadline)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def appending(actor: str) -> Callable[[Session], int]:
    """A task's work: append one entry of ``actor``."""

    def run(session: Session) -> int:
        audit.append(
            session,
            audit.AccessRecord(actor=actor, role="system", action="tick", outcome=audit.ALLOWED),
        )
        return 1

    return run


@pytest.fixture
def running() -> Iterator[list[Worker]]:
    """Workers a test starts; stopped afterwards whatever happens."""
    workers: list[Worker] = []
    yield workers
    for worker in workers:
        worker.stop()


def start(running: list[Worker], url: str, *tasks: PeriodicTask) -> Worker:
    worker = Worker(tasks, database_url=url)
    running.append(worker)
    worker.start()
    return worker


def test_a_task_runs_every_interval_and_each_run_commits(
    module_database_url: str, running: list[Worker]
) -> None:
    worker = start(running, module_database_url, PeriodicTask("ticks", 0.05, appending("ticks")))

    wait_until(lambda: committed(module_database_url, "ticks") >= 3, "three committed runs")
    assert worker.stop() is True
    status = worker.status()["ticks"]
    assert status.runs == committed(module_database_url, "ticks")
    assert status.failures == 0
    assert not worker.running


def test_a_failed_run_is_rolled_back_logged_without_its_text_and_retried(
    module_database_url: str, running: list[Worker], caplog: pytest.LogCaptureFixture
) -> None:
    calls = {"n": 0}

    def flaky(session: Session) -> int:
        appending("flaky")(session)
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ValueError(f"could not handle {FAKE_ID_NUMBER}")
        return 1

    caplog.set_level(logging.INFO, logger="citygrid.worker")
    worker = start(running, module_database_url, PeriodicTask("flaky", 0.05, flaky))

    wait_until(lambda: worker.status()["flaky"].runs >= 4, "two failed and two good runs")
    worker.stop()
    status = worker.status()["flaky"]
    assert (status.failures, status.consecutive_failures) == (2, 0)
    assert status.last_error == "ValueError"
    # The failed runs' entries were rolled back with them.
    assert committed(module_database_url, "flaky") == status.runs - 2
    assert "task flaky failed with ValueError (1 in a row)" in caplog.text
    assert "task flaky recovered after 2 failed runs" in caplog.text
    assert FAKE_ID_NUMBER not in caplog.text


def test_a_database_error_names_the_driver_error_only(
    module_database_url: str, running: list[Worker], caplog: pytest.LogCaptureFixture
) -> None:
    def bad_sql(session: Session) -> int:
        query = f"SELECT * FROM persons WHERE id_number = '{FAKE_ID_NUMBER}' AND x"  # noqa: S608
        session.execute(text(query))
        return 1

    caplog.set_level(logging.WARNING, logger="citygrid.worker")
    worker = start(running, module_database_url, PeriodicTask("bad-sql", 60, bad_sql))

    wait_until(lambda: worker.status()["bad-sql"].failures >= 1, "the failure")
    worker.stop()
    assert worker.status()["bad-sql"].last_error in (
        "OperationalError(OperationalError)",
        "ProgrammingError(UndefinedColumn)",
    )
    assert "task bad-sql failed with" in caplog.text
    assert FAKE_ID_NUMBER not in caplog.text


def test_wake_runs_a_task_before_its_tick(module_database_url: str, running: list[Worker]) -> None:
    worker = start(running, module_database_url, PeriodicTask("woken", 3600, appending("woken")))
    wait_until(lambda: worker.status()["woken"].runs == 1, "the run at start")

    worker.wake("woken")

    wait_until(lambda: worker.status()["woken"].runs == 2, "the woken run")
    assert committed(module_database_url, "woken") == 2


def test_a_draining_task_runs_again_at_once_until_it_finds_nothing(
    module_database_url: str, running: list[Worker]
) -> None:
    backlog = {"left": 5}

    def deliver(session: Session) -> int:
        if not backlog["left"]:
            return 0
        backlog["left"] -= 1
        return appending("drain")(session)

    worker = start(running, module_database_url, PeriodicTask("drain", 3600, deliver, drain=True))

    wait_until(lambda: worker.status()["drain"].runs == 6, "five deliveries and an empty run")
    assert committed(module_database_url, "drain") == 5


def test_stop_lets_the_run_in_progress_finish(
    module_database_url: str, running: list[Worker]
) -> None:
    started, release = threading.Event(), threading.Event()

    def slow(session: Session) -> int:
        started.set()
        release.wait(DEADLINE_SECONDS)
        return appending("slow")(session)

    worker = start(running, module_database_url, PeriodicTask("slow", 3600, slow))
    assert started.wait(DEADLINE_SECONDS)
    result: dict[str, bool] = {}
    stopper = threading.Thread(target=lambda: result.update(stopped=worker.stop()))
    stopper.start()

    stopper.join(0.2)
    assert stopper.is_alive(), "stop() returned while a run was in progress"
    release.set()
    stopper.join(DEADLINE_SECONDS)

    assert result == {"stopped": True}
    assert committed(module_database_url, "slow") == 1


def test_tasks_are_named_once_and_need_a_positive_interval() -> None:
    def nothing(session: Session) -> None:
        return None

    with pytest.raises(ValueError, match="named twice: a"):
        Worker([PeriodicTask("a", 1, nothing), PeriodicTask("a", 2, nothing)])
    with pytest.raises(ValueError, match="positive"):
        PeriodicTask("b", 0, nothing)
    with pytest.raises(ValueError, match="name"):
        PeriodicTask("", 1, nothing)
    assert Worker([]).status() == {}
    assert TaskStatus("x").runs == 0


def test_the_worker_runs_the_sequencer_and_needs_a_signing_key(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'unused.sqlite3'}"
    settings = Settings(
        database_url=database_url, demo_mode=False, audit_signing_key_file=tmp_path / "missing-key"
    )

    with pytest.raises(SigningKeyMissing, match="citygrid audit keygen"):
        collect_tasks(settings)
    demo = Settings(
        database_url=database_url, demo_mode=True, audit_signing_key_file=tmp_path / "demo-key"
    )
    assert "audit.checkpoint" in [task.name for task in collect_tasks(demo)]
