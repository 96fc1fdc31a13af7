"""Test harness: every database test runs on SQLite and on PostgreSQL.

Schemas are built by running the migrations. Each test runs inside a transaction that is
rolled back. PostgreSQL comes from ``CITYGRID_TEST_POSTGRES_URL`` (default: the local
server); a fresh database is created per run and dropped after. With ``CI=true`` an
unreachable PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    """An HTTP client for the app. It asks for English, the language the tests' assertions
    read; a test of the Chinese interface sets Accept-Language or the language cookie."""
    with TestClient(app, headers={"Accept-Language": "en"}) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# ---------------------------------------------------------------------------- log hygiene
# Everything the app logs during the run also goes to one file, which
# tests/test_log_hygiene.py scans at the end for residents' names and ID numbers.

LOG_HYGIENE_TEST = "tests/test_log_hygiene.py"
# The test client's own loggers record the URLs it requests: not the app's log.
TEST_CLIENT_LOGGERS = ("httpx", "httpcore")
# uvicorn's loggers do not propagate to the root (and uvicorn resets their handlers).
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class _NotTheTestClient(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(TEST_CLIENT_LOGGERS)


@pytest.fixture(scope="session")
def log_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The file every log record of the run goes to (citygrid and uvicorn at DEBUG)."""
    path = tmp_path_factory.getbasetemp() / "citygrid-test.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(_NotTheTestClient())
    citygrid_logger = logging.getLogger("citygrid")
    previous_level = citygrid_logger.level
    citygrid_logger.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    handler.citygrid_path = path  # type: ignore[attr-defined]
    try:
        yield path
    finally:
        logging.getLogger().removeHandler(handler)
        for name in UVICORN_LOGGERS:
            logging.getLogger(name).removeHandler(handler)
        citygrid_logger.setLevel(previous_level)
        handler.close()


@pytest.fixture(autouse=True)
def _log_to_file(log_file: Path) -> None:
    """Keep uvicorn's loggers writing to the run's log file (a server's start resets them)."""
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "citygrid_path", None)]
    for name in UVICORN_LOGGERS:
        uvicorn_logger = logging.getLogger(name)
        if handler not in uvicorn_logger.handlers:
            uvicorn_logger.addHandler(handler)
        uvicorn_logger.setLevel(logging.DEBUG)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the log hygiene test last: it checks what every other test logged."""
    last = [item for item in items if item.nodeid.startswith(LOG_HYGIENE_TEST)]
    items[:] = [item for item in items if item not in last] + last


# ---------------------------------------------------------------------------- browsers


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, one for the run (Playwright never downloads a browser)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium

    require_chromium()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="session")
def screens(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``CITYGRID_SCREENSHOTS`` when set, else a temporary directory."""
    chosen = os.environ.get("CITYGRID_SCREENSHOTS")
    if chosen:
        path = Path(chosen)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("screens")
