"""The sequencer in the background: entries appended by requests end up in signed checkpoints,
whether the worker runs inside the app, alone as ``citygrid worker``, or twice at once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

from citygrid.audit import service as audit
from citygrid.audit.models import AuditLeaf
from citygrid.audit.signing import SigningKey
from citygrid.kit.db import dispose_engines, unit_of_work
from citygrid.kit.settings import Settings, get_settings, normalise_database_url
from citygrid.kit.worker import Worker, worker_for
from tests.audit.conftest import access_record
from tests.audit.test_worker_runner import DEADLINE_SECONDS, wait_until

CITYGRID = Path(sys.executable).with_name("citygrid")


@pytest.fixture
def worker_settings(fresh_database_url: str, audit_seed: str) -> Settings:
    return Settings(database_url=fresh_database_url, demo_mode=True, audit_signing_key=audit_seed)


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.stop()


def append_committed(url: str, count: int, first: int = 0) -> list[int]:
    """Append entries as requests do: each in its own committed transaction."""
    ids = []
    for n in range(first, first + count):
        with unit_of_work(url) as session:
            ids.append(audit.append(session, access_record(n)))
    return ids


def checkpointed(url: str) -> int:
    """The size of the tree the latest signed checkpoint covers."""
    with unit_of_work(url) as session:
        latest = audit.latest_checkpoint(session)
        return latest.tree_size if latest is not None else 0


def test_appended_entries_are_soon_in_a_signed_checkpoint(
    worker_settings: Settings, signing_key: SigningKey, workers: list[Worker]
) -> None:
    url = worker_settings.database_url
    worker = worker_for(worker_settings)
    workers.append(worker)
    worker.start()

    ids = append_committed(url, 25)

    wait_until(lambda: checkpointed(url) >= 25, "a checkpoint over 25 entries")
    with unit_of_work(url) as session:
        proof = audit.inclusion_proof(session, entry_id=ids[-1])
        report = audit.verify(session, public_keys=[signing_key.public_bytes])
    assert proof.checkpoint.key_id == signing_key.key_id
    assert report.ok, report.problem
    assert report.entries_checked == 25
    assert worker.status()["audit.checkpoint"].failures == 0


def test_two_workers_never_give_out_a_position_twice(
    worker_settings: Settings, signing_key: SigningKey, workers: list[Worker]
) -> None:
    url = worker_settings.database_url
    for _ in range(2):
        worker = worker_for(worker_settings)
        workers.append(worker)
        worker.start()

    writers = [threading.Thread(target=append_committed, args=(url, 40, 100 * n)) for n in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(DEADLINE_SECONDS)

    wait_until(lambda: checkpointed(url) == 160, "a checkpoint over all 160 entries")
    with unit_of_work(url) as session:
        leaves = session.execute(select(AuditLeaf.position, AuditLeaf.entry_id)).all()
        report = audit.verify(session, public_keys=[signing_key.public_bytes])
    assert sorted(position for position, _ in leaves) == list(range(160))
    assert len({entry_id for _, entry_id in leaves}) == 160
    assert report.ok, report.problem
    assert [w.status()["audit.checkpoint"].failures for w in workers] == [0, 0]


def test_the_app_runs_the_worker_only_when_asked(worker_settings: Settings) -> None:
    from citygrid.app import create_app

    url = worker_settings.database_url
    quiet = create_app(worker_settings)
    with TestClient(quiet):
        assert quiet.state.worker is None

    app = create_app(worker_settings, start_worker=True)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert app.state.worker.running
        append_committed(url, 3)
        wait_until(lambda: checkpointed(url) == 3, "the embedded worker's checkpoint")
    assert not app.state.worker.running


@pytest.mark.parametrize("embedded", ["true", "false"])
def test_serve_embeds_the_worker_unless_the_setting_turns_it_off(
    fresh_database_url: str,
    audit_seed: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    embedded: str,
) -> None:
    from citygrid.kit import serve

    served: list[FastAPI] = []
    monkeypatch.setenv("CITYGRID_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("CITYGRID_AUDIT_SIGNING_KEY", audit_seed)
    monkeypatch.setenv("CITYGRID_EMBEDDED_WORKER", embedded)
    monkeypatch.setattr(serve, "run", lambda app, **_options: served.append(app))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()  # read while the database was migrated, before the above

    serve.serve_app(fresh_database_url, host="127.0.0.1", port=0)

    [app] = served
    with TestClient(app):
        assert (app.state.worker is not None) is (embedded == "true")


def test_citygrid_worker_runs_alone_until_sigterm(
    fresh_database_url: str, audit_seed: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "CITYGRID_DATABASE_URL": fresh_database_url,
        "CITYGRID_AUDIT_SIGNING_KEY": audit_seed,
        "CITYGRID_DEMO_MODE": "false",
        "CITYGRID_SECRET_KEY": "a-test-secret-that-is-not-the-demo-one",
    }
    append_committed(fresh_database_url, 7)
    process = subprocess.Popen(
        [str(CITYGRID), "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(lambda: checkpointed(fresh_database_url) == 7, "the worker's checkpoint")
        append_committed(fresh_database_url, 2, first=7)
        wait_until(lambda: checkpointed(fresh_database_url) == 9, "the next checkpoint")
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=DEADLINE_SECONDS)

    assert process.returncode == 0, output
    assert "worker started: audit.checkpoint" in output
    assert "SIGTERM received, stopping" in output
    assert "worker stopped" in output


DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"


def test_the_sequencer_runs_under_a_role_that_may_only_read_and_append_the_log(
    fresh_database_url: str, signing_key: SigningKey
) -> None:
    if not fresh_database_url.startswith("postgresql"):
        pytest.skip("database roles are PostgreSQL's (SQLite has the triggers alone)")
    role = f"citygrid_app_{uuid.uuid4().hex[:8]}"
    database = fresh_database_url.rsplit("/", 1)[1]
    [grants] = [
        block
        for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), re.DOTALL)
        if "GRANT CONNECT" in block
    ]
    owner = create_engine(normalise_database_url(fresh_database_url), isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN"))
        connection.exec_driver_sql(
            grants.replace("citygrid_app", role).replace(
                "DATABASE citygrid ", f"DATABASE {database} "
            )
        )
    app_url = fresh_database_url.replace("postgres@", f"{role}@", 1)
    try:
        ids = append_committed(app_url, 5)
        with unit_of_work(app_url) as session:
            made = audit.checkpoint(session, signing_key, origin="citygrid/audit")
        assert made is not None and made.tree_size == 5
        with pytest.raises(DBAPIError, match="permission denied"), unit_of_work(app_url) as session:
            session.execute(
                text("UPDATE audit_entries SET actor = 'x' WHERE id = :id"), {"id": ids[0]}
            )
        with pytest.raises(DBAPIError, match="permission denied"), unit_of_work(app_url) as session:
            session.execute(text("DELETE FROM audit_checkpoints"))
    finally:
        dispose_engines()
        with owner.connect() as connection:
            connection.execute(text(f"DROP OWNED BY {role}"))
            connection.execute(text(f"DROP ROLE {role}"))
        owner.dispose()
