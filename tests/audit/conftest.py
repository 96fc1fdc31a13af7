"""Fixtures of the access log's tests: a signing key the app is configured with, signed-in
callers of each role, and fresh databases for what must really commit (worker, CLI, a live
server)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from citygrid.audit import service as audit
from citygrid.audit.signing import SigningKey, generate_seed_b64, signing_key_from_seed
from citygrid.kit import db as kit_db
from citygrid.kit import i18n
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import Settings, normalise_database_url
from citygrid.kit.web import get_session
from tests.access.auth_factories import (
    PASSWORD,
    fast_settings,
    make_account,
    token_for,
)
from tests.conftest import POSTGRES_URL, _postgres_admin_engine
from tests.fixtures_territory import import_mini_city

DISTRICT = "440104"


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    i18n.set_locale("en")
    yield
    i18n.set_locale(i18n.DEFAULT_LOCALE)


@pytest.fixture
def audit_seed() -> str:
    """The private key (base64 seed) the test app signs checkpoints with."""
    return generate_seed_b64()


@pytest.fixture
def signing_key(audit_seed: str) -> SigningKey:
    """The test app's signing key."""
    return signing_key_from_seed(audit_seed)


@pytest.fixture
def settings(database_url: str, audit_seed: str) -> Settings:
    """Settings of the test app: its own signing key, cheap password hashing, no worker."""
    return fast_settings(database_url, audit_signing_key=audit_seed, embedded_worker=False)


@pytest.fixture
def app(settings: Settings, db_session: Session) -> FastAPI:
    """The app; each request a savepoint of the test's transaction (all rolled back after the
    test). A request that fails rolls back its own savepoint only; one that commits early
    (to log before it answers) has released it already."""
    from citygrid.app import create_app

    application = create_app(settings)

    def _request_session() -> Iterator[Session]:
        savepoint = db_session.begin_nested()
        try:
            yield db_session
            db_session.flush()
            if savepoint.is_active:
                savepoint.commit()
        except BaseException:
            if savepoint.is_active:
                savepoint.rollback()
            raise

    application.dependency_overrides[get_session] = _request_session
    return application


@pytest.fixture
def city(db_session: Session) -> Session:
    """The mini city (accounts are scoped to its units)."""
    import_mini_city(db_session)
    db_session.flush()
    return db_session


def bearer_for(
    client: TestClient,
    session: Session,
    settings: Settings,
    username: str,
    role: str,
    scopes: tuple[str, ...] = (DISTRICT,),
    department: str | None = None,
) -> dict[str, str]:
    """Create an account and sign it in through the token endpoint; its request headers."""
    make_account(session, settings, username, role=role, scopes=scopes, department=department)
    session.flush()
    response = token_for(client, grant_type="password", username=username, password=PASSWORD)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def auditor(client: TestClient, city: Session, settings: Settings) -> dict[str, str]:
    """Headers of a signed-in auditor of the district."""
    return bearer_for(client, city, settings, "auditor1", "auditor")


@pytest.fixture
def admin(client: TestClient, city: Session, settings: Settings) -> dict[str, str]:
    """Headers of a signed-in administrator."""
    return bearer_for(client, city, settings, "admin1", "admin")


@pytest.fixture
def grid_worker(client: TestClient, city: Session, settings: Settings) -> dict[str, str]:
    """Headers of a signed-in grid worker of the seed grid."""
    return bearer_for(client, city, settings, "worker1", "grid_worker", ("440104001001002",))


def access_record(
    n: int, *, actor: str = "officer1", purpose: str = "patrol-update"
) -> audit.AccessRecord:
    """A plausible entry: a grid worker listed two residents."""
    return audit.AccessRecord(
        actor=actor,
        role="grid_worker",
        action="list_persons",
        outcome=audit.ALLOWED,
        scope=("440104001001002",),
        purpose=purpose,
        subjects=(f"ref{n:04d}", f"ref{n + 1:04d}"),
        fields=("identity",),
        request_id=f"req-{n}",
        client_address="10.0.0.7",
    )


# ----------------------------------------------------------------------------- fresh databases


@contextmanager
def _fresh_database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        url = f"sqlite:///{directory / 'audit.sqlite3'}"
        upgrade(url)
        try:
            yield url
        finally:
            kit_db.dispose_engines()
        return
    admin = _postgres_admin_engine()
    if admin is None:
        pytest.skip("PostgreSQL is not reachable (set CITYGRID_TEST_POSTGRES_URL)")
    name = f"citygrid_audit_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{normalise_database_url(POSTGRES_URL).rsplit('/', 1)[0]}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        kit_db.dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, migrated, empty database of each kind, for tests whose work really commits
    (the shared test database only ever sees rolled-back transactions)."""
    with _fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Like ``fresh_database_url``, shared by a module's tests (which keep out of each
    other's way, e.g. by actor names)."""
    with _fresh_database(request.param, tmp_path_factory.mktemp("audit")) as url:
        yield url
