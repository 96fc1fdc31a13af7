"""Fixtures of the demo tests: one small demo build per run on SQLite (through the
``citygrid demo`` command, with the server stubbed out) and one on a fresh PostgreSQL
database; the tests only read them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from citygrid.demo.builder import BuildReport, build_demo_database
from citygrid.kit.db import make_engine
from citygrid.kit.settings import get_settings, normalise_database_url, sqlite_url
from tests.conftest import IN_CI, POSTGRES_URL

SMALL_RESIDENTS = 3_000
SEED = 20261127


@dataclass
class DemoBuild:
    """A finished demo build: where it is and what the command printed."""

    url: str
    path: Path | None = None
    output: str = ""
    served: list[dict[str, Any]] = field(default_factory=list)
    report: BuildReport | None = None


def invoke(args: list[str]) -> Any:
    """Run the citygrid command line in-process."""
    from citygrid.cli import app

    return CliRunner().invoke(app, args)


@pytest.fixture(scope="session")
def sqlite_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoBuild]:
    """``citygrid demo`` on a missing file: it builds 3,000 residents, then "serves"."""
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    build = DemoBuild(url=sqlite_url(path), path=path)
    with pytest.MonkeyPatch.context() as patch:
        # The command sets these for its own process; keep them from leaking into other tests.
        patch.delenv("CITYGRID_DATABASE_URL", raising=False)
        patch.setenv("CITYGRID_DEMO_MODE", "false")
        patch.setattr(
            "citygrid.kit.serve.serve_app",
            lambda url, *, host, port: build.served.append(
                {"url": url, "host": host, "port": port, "demo_mode": get_settings().demo_mode}
            ),
        )
        result = invoke(
            ["demo", "--db", str(path), "--residents", str(SMALL_RESIDENTS), "--port", "8123"]
        )
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    build.output = result.output
    yield build


@pytest.fixture(scope="session")
def sqlite_demo_engine(sqlite_demo: DemoBuild) -> Iterator[Engine]:
    """An engine on the SQLite demo."""
    engine = make_engine(sqlite_demo.url, poolclass=NullPool)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def postgres_demo() -> Iterator[DemoBuild]:
    """The same small demo built into a fresh PostgreSQL database (dropped afterwards)."""
    admin = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL is unreachable: {exc}")
        pytest.skip("PostgreSQL is not reachable (set CITYGRID_TEST_POSTGRES_URL)")
    name = f"citygrid_demo_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = normalise_database_url(POSTGRES_URL).rsplit("/", 1)[0] + f"/{name}"
    try:
        report = build_demo_database(url, residents=SMALL_RESIDENTS, seed=SEED)
        yield DemoBuild(url=url, report=report)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def demo_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on the demo build, once per database."""
    build: DemoBuild = request.getfixturevalue(
        "sqlite_demo" if request.param == "sqlite" else "postgres_demo"
    )
    engine = make_engine(build.url)
    yield engine
    engine.dispose()
