"""Test harness: every database test runs on SQLite and on PostgreSQL.

Schemas are built by running the migrations. Each test runs inside a transaction that is
rolled back. PostgreSQL comes from ``CITYGRID_TEST_POSTGRES_URL`` (default: the local
server); a fresh database is created per run and dropped after. With ``CI=true`` an
unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("CITYGRID_DEMO_MODE", "true")
os.environ.pop("CITYGRID_DATABASE_URL", None)

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import Engine, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from citygrid.kit import db as kit_db  # noqa: E402
from citygrid.kit.migrate import upgrade  # noqa: E402
from citygrid.kit.settings import Settings, get_settings, normalise_database_url  # noqa: E402
from citygrid.kit.web import get_session  # noqa: E402

POSTGRES_URL = os.environ.get(
    "CITYGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _postgres_admin_engine() -> Engine | None:
    engine = kit_db.make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=None)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL at CITYGRID_TEST_POSTGRES_URL is unreachable: {exc}")
        return None
    return engine


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated SQLite database file for the whole run."""
    path: Path = tmp_path_factory.mktemp("db") / "citygrid-test.sqlite3"
    url = f"sqlite:///{path}"
    upgrade(url)
    yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for the whole run, dropped afterwards."""
    admin = _postgres_admin_engine()
    if admin is None:
        pytest.skip("PostgreSQL is not reachable (set CITYGRID_TEST_POSTGRES_URL)")
    name = f"citygrid_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    base = normalise_database_url(POSTGRES_URL).rsplit("/", 1)[0]
    url = f"{base}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        kit_db.dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of a migrated test database; each database test runs once per backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


@pytest.fixture
def db_session(database_url: str) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    engine = kit_db.get_engine(database_url)
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", autoflush=False)
    try:
        yield session
    finally:
        session.close()
        transaction.rollback()
        connection.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """Settings for an app bound to the test database."""
    return Settings(database_url=database_url, demo_mode=True)


@pytest.fixture
def app(settings: Settings, db_session: Session) -> Iterator[FastAPI]:
    """The application, with each request using the test's rolled-back session."""
    from citygrid.app import create_app

    application = create_app(settings)

    def _test_session() -> Iterator[Session]:
        # The request's unit of work ends in a flush; the test's transaction is rolled back.
        try:
            yield db_session
            db_session.flush()
        except BaseException:
            db_session.rollback()
            raise

    application.dependency_overrides[get_session] = _test_session
    yield application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client for the app."""
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
