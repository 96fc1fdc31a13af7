"""The demo commands as a user runs them: build and serve, serve what exists, refuse what
cannot be right, and never leave a half-built file behind."""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from citygrid.demo import repository
from citygrid.demo.builder import build_demo_file
from tests.demo.conftest import DemoBuild, invoke


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stub out the web server; the list collects what would have been served."""
    served: list[dict[str, Any]] = []
    monkeypatch.delenv("CITYGRID_DATABASE_URL", raising=False)
    monkeypatch.setenv("CITYGRID_DEMO_MODE", "false")
    monkeypatch.setattr(
        "citygrid.kit.serve.serve_app",
        lambda url, *, host, port: served.append({"url": url, "host": host, "port": port}),
    )
    return served


def test_demo_builds_a_missing_city_then_serves_it_in_demo_mode(sqlite_demo: DemoBuild) -> None:
    assert sqlite_demo.path is not None and sqlite_demo.path.exists()
    assert "Building the demo city (3,000 residents" in sqlite_demo.output
    assert "http://127.0.0.1:8123/" in sqlite_demo.output
    assert sqlite_demo.served == [
        {"url": sqlite_demo.url, "host": "127.0.0.1", "port": 8123, "demo_mode": True}
    ]
    # Nothing but the database is left in its folder (no temporary build file); its WAL
    # companions exist while other tests of the session have it open.
    left = {p.name for p in sqlite_demo.path.parent.iterdir()}
    assert left - {"demo.sqlite3-wal", "demo.sqlite3-shm"} == {"demo.sqlite3"}


def test_demo_serves_an_existing_file_as_it_is(
    sqlite_demo: DemoBuild, no_server: list[dict[str, Any]]
) -> None:
    assert sqlite_demo.path is not None
    before = digest(sqlite_demo.path)
    result = invoke(["demo", "--db", str(sqlite_demo.path), "--seed", "7", "--port", "8124"])
    assert result.exit_code == 0, result.output
    assert "Serving the existing demo database" in result.output
    assert "build-demo --force" in result.output  # --seed does not apply to an existing file
    assert no_server == [{"url": sqlite_demo.url, "host": "127.0.0.1", "port": 8124}]
    assert digest(sqlite_demo.path) == before


@pytest.mark.parametrize("command", ["demo", "build-demo"])
def test_fewer_residents_than_the_seed_grid_is_refused(
    command: str, tmp_path: Path, no_server: list[dict[str, Any]]
) -> None:
    path = tmp_path / "demo.sqlite3"
    result = invoke([command, "--db", str(path), "--residents", "902"])
    assert result.exit_code == 2
    assert "903" in result.output
    assert no_server == []
    assert list(tmp_path.iterdir()) == []


def test_a_negative_seed_is_refused(tmp_path: Path) -> None:
    result = invoke(["build-demo", "--db", str(tmp_path / "d.sqlite3"), "--seed", "-1"])
    assert result.exit_code == 2
    assert "seed" in result.output
    assert list(tmp_path.iterdir()) == []


def test_build_demo_refuses_to_overwrite_an_existing_file(sqlite_demo: DemoBuild) -> None:
    assert sqlite_demo.path is not None
    before = digest(sqlite_demo.path)
    result = invoke(["build-demo", "--db", str(sqlite_demo.path), "--residents", "903"])
    assert result.exit_code == 1
    assert "--force" in result.output
    assert digest(sqlite_demo.path) == before


def test_build_demo_force_replaces_a_broken_file_and_clears_debris(tmp_path: Path) -> None:
    path = tmp_path / "demo.sqlite3"
    path.write_bytes(b"not a database")
    (tmp_path / "demo.sqlite3-wal").write_bytes(b"stale write-ahead log")
    # A build killed with SIGKILL cannot clean up: its temporary file stays behind (no
    # process has this id: ids are below 2**22 on Linux). The next build removes it.
    (tmp_path / ".demo.sqlite3.building-99999999").write_bytes(b"half a database")
    result = invoke(["build-demo", "--db", str(path), "--residents", "903", "--force"])
    assert result.exit_code == 0, result.output
    assert "903 residents" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.sqlite3"]
    with closing(sqlite3.connect(path)) as connection:
        assert connection.execute("SELECT count(*) FROM persons").fetchone() == (903,)


def test_a_failed_build_leaves_the_old_file_and_no_debris(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "demo.sqlite3"
    path.write_bytes(b"the old file")
    real_insert = repository.sqlite_insert

    def insert_then_die(connection: Any, table: str, *args: Any, **kwargs: Any) -> None:
        if table == "persons":
            raise KeyboardInterrupt  # the user pressed Ctrl+C half-way
        real_insert(connection, table, *args, **kwargs)

    monkeypatch.setattr(repository, "sqlite_insert", insert_then_die)
    with pytest.raises(KeyboardInterrupt):
        build_demo_file(path, residents=903, force=True)
    assert path.read_bytes() == b"the old file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.sqlite3"]


def test_help_texts_describe_the_commands() -> None:
    demo_help = " ".join(invoke(["demo", "--help"]).output.split())
    assert "building it first if the file is missing" in demo_help
    assert "--residents" in demo_help and "--seed" in demo_help and "--port" in demo_help
    build_help = " ".join(invoke(["build-demo", "--help"]).output.split())
    assert "Refuses to replace an existing file unless --force is given" in build_help
    assert "without serving" in build_help
