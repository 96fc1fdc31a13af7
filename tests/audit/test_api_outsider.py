"""An outsider checks a proof from a running citygrid with nothing but its public key.

A real server (uvicorn on a free port) over a fresh database; an auditor fetches a proof
over HTTP and hands it on; ``tests/audit/outsider_verify.py`` (the script of docs/audit.md)
runs as a separate process that imports nothing of citygrid.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn

from citygrid.audit import service as audit
from citygrid.audit.signing import SigningKey
from citygrid.kit.db import unit_of_work
from citygrid.kit.settings import Settings
from tests.access.auth_factories import PASSWORD, fast_settings, make_account
from tests.audit.conftest import access_record
from tests.fixtures_territory import import_mini_city

SCRIPT = Path(__file__).with_name("outsider_verify.py")
DOC = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
DEADLINE_SECONDS = 20.0


@contextmanager
def serving(settings: Settings, *, start_worker: bool = False) -> Iterator[str]:
    """The app served by uvicorn on a free local port; its base URL."""
    from citygrid.app import create_app

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    app = create_app(settings, start_worker=start_worker)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            pytest.fail("the server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(DEADLINE_SECONDS)
        listener.close()


def outsider(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the outsider's script as its own process."""
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=DEADLINE_SECONDS,
        check=False,
    )


def test_a_proof_fetched_over_http_verifies_with_the_published_key(
    fresh_database_url: str, audit_seed: str, signing_key: SigningKey, tmp_path: Path
) -> None:
    settings = fast_settings(fresh_database_url, audit_signing_key=audit_seed)
    with unit_of_work(fresh_database_url) as session:
        import_mini_city(session)
        make_account(session, settings, "auditor1", role="auditor", scopes=("440104",))
        ids = [audit.append(session, access_record(n)) for n in range(13)]
        audit.checkpoint(session, signing_key, origin=settings.audit_log_origin)

    with serving(settings) as base, httpx.Client(base_url=base) as http:
        token = http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": "auditor1", "password": PASSWORD},
        ).json()["access_token"]
        response = http.get(
            f"/api/v1/audit/entries/{ids[9]}/proof", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200, response.text
        proof_file = tmp_path / "proof.json"
        proof_file.write_text(response.text)

        checked = outsider(str(proof_file), "--server", base)

        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.startswith(f"OK: entry {ids[9]} is leaf ")
        assert "of 13, signed" in checked.stdout

        # The entry says something else than what was logged: the outsider notices.
        proof = response.json()
        entry = json.loads(proof["canonical_entry"]) | {"outcome": "denied"}
        proof["canonical_entry"] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
        proof_file.write_text(json.dumps(proof))
        forged = outsider(str(proof_file), "--server", base)

        assert forged.returncode == 1
        assert "NOT VERIFIED" in forged.stdout


def test_the_documented_script_is_the_tested_one() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert SCRIPT.read_text(encoding="utf-8") in blocks


def test_audited_reads_keep_answering_while_the_embedded_worker_signs(
    fresh_database_url: str, audit_seed: str
) -> None:
    settings = fast_settings(fresh_database_url, audit_signing_key=audit_seed)
    with unit_of_work(fresh_database_url) as session:
        import_mini_city(session)
        make_account(session, settings, "auditor1", role="auditor", scopes=("440104",))

    statuses: list[int] = []
    with serving(settings, start_worker=True) as base, httpx.Client(base_url=base) as http:
        token = http.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": "auditor1", "password": PASSWORD},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}

        def search_repeatedly() -> None:
            with httpx.Client(base_url=base, headers=headers, timeout=DEADLINE_SECONDS) as own:
                for _ in range(15):
                    statuses.append(own.get("/api/v1/audit/entries?limit=5").status_code)

        searchers = [threading.Thread(target=search_repeatedly) for _ in range(4)]
        for searcher in searchers:
            searcher.start()
        for searcher in searchers:
            searcher.join(DEADLINE_SECONDS * 3)

        # Each search is an entry; the worker signs them all.
        latest = 0
        deadline = time.monotonic() + DEADLINE_SECONDS
        while latest < 60 and time.monotonic() < deadline:
            answer = http.get("/api/v1/audit/checkpoints/latest")
            latest = answer.json()["tree_size"] if answer.status_code == 200 else 0
            time.sleep(0.1)

    assert statuses == [200] * 60
    assert latest == 60
