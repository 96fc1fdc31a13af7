"""Helpers of the sign-in tests: accounts, clients, the sign-in form, TOTP codes, the clock.

    from tests.access.auth_factories import fast_settings, make_account, sign_in

A test module that wants ``fast_settings`` as its ``settings`` fixture, and
``request_scoped_app`` as its ``app``, imports the fixtures (pytest knows them by those names):

    from tests.access.auth_factories import (
        fast_settings_fixture,  # noqa: F401 (fixture)
        request_scoped_app_fixture,  # noqa: F401 (fixture)
    )

Hashing uses cheap argon2id parameters (``FAST_HASHING``) so a test signs in in
milliseconds; the production parameters are the settings' defaults.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from citygrid.access import accounts, totp
from citygrid.access.accounts import CreatedAccount, CreatedClient
from citygrid.access.models import SignInThrottle, WebSession
from citygrid.kit.actor import Actor
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from citygrid.kit.web import get_session
from tests.fixtures_territory import MINI_GRID_CODES

PASSWORD = "correct horse battery"
FAST_HASHING: dict[str, Any] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "password_hash_parallelism": 1,
}
ADMIN = Actor(name="test-admin", role="admin", kind="system")
SEED_GRID = MINI_GRID_CODES[1]  # 440104001001002
BROWSER = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en"}


def fast_settings(database_url: str, **overrides: Any) -> Settings:
    """Settings for a test app: demo mode, cheap hashing, and any overrides."""
    return Settings(database_url=database_url, **{"demo_mode": True, **FAST_HASHING, **overrides})


def make_account(
    session: Session,
    settings: Settings,
    username: str = "zhang",
    *,
    role: str = "grid_worker",
    scopes: tuple[str, ...] = (SEED_GRID,),
    department: str | None = None,
    password: str = PASSWORD,
    display_name: str | None = None,
) -> CreatedAccount:
    """An account in the (mini city's) territory."""
    return accounts.create_account(
        session,
        ADMIN,
        settings=settings,
        username=username,
        password=password,
        role=role,
        scopes=scopes,
        department=department,
        display_name=display_name,
    )


def make_client(
    session: Session,
    settings: Settings,
    client_id: str = "public-security",
    *,
    department: str = "public-security",
    scopes: tuple[str, ...] = ("440104",),
) -> CreatedClient:
    """An API client with a random secret (``.secret``)."""
    return accounts.create_client(
        session,
        ADMIN,
        settings=settings,
        client_id=client_id,
        department=department,
        scopes=scopes,
    )


def request_scoped_app(settings: Settings, db_session: Session) -> FastAPI:
    """The app, each request a unit of work inside the test's transaction: a request that
    fails rolls back its own savepoint only, as it would roll back its own transaction, so
    what the test set up before (and what earlier requests did) stays."""
    from citygrid.app import create_app

    application = create_app(settings)

    def _request_session() -> Iterator[Session]:
        savepoint = db_session.begin_nested()
        try:
            yield db_session
            db_session.flush()
            savepoint.commit()
        except BaseException:
            savepoint.rollback()
            raise

    application.dependency_overrides[get_session] = _request_session
    return application


@pytest.fixture(name="settings")
def fast_settings_fixture(database_url: str) -> Settings:
    """The ``settings`` fixture of a module that imports it: ``fast_settings``."""
    return fast_settings(database_url)


@pytest.fixture(name="app")
def request_scoped_app_fixture(settings: Settings, db_session: Session) -> FastAPI:
    """The ``app`` fixture of a module that imports it: ``request_scoped_app``."""
    return request_scoped_app(settings, db_session)


CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_in(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF_INPUT.search(html)
    assert found, "the page has no csrf_token field"
    return found.group(1)


def current_code(secret: str, *, steps_ahead: int = 0) -> str:
    """The TOTP code of now (or of a later step, still within the allowed drift)."""
    return totp.code_at(secret, totp.time_step(utcnow()) + steps_ahead)


def post_signin(client: TestClient, **fields: str) -> Response:
    """Open the sign-in form, then post it with its CSRF token and the given fields."""
    form = client.get("/signin", headers=BROWSER)
    data = {"csrf_token": csrf_in(form.text), "next": "/", **fields}
    return client.post("/signin", data=data, headers=BROWSER, follow_redirects=False)


def sign_in(
    client: TestClient, username: str = "zhang", password: str = PASSWORD, next_path: str = "/"
) -> Response:
    """Sign in through the form (one step); asserts it worked."""
    response = post_signin(client, username=username, password=password, next=next_path)
    assert response.status_code == 303, response.text
    assert client.cookies.get("citygrid_session")
    return response


def token_for(client: TestClient, **fields: str) -> Response:
    """Post to the token endpoint (asking for English messages, which tests read)."""
    return client.post("/api/v1/auth/token", data=fields, headers={"Accept-Language": "en"})


def web_session_rows(session: Session) -> list[WebSession]:
    """Every web session row, fresh from the database."""
    session.expire_all()
    return list(session.scalars(select(WebSession)))


def age_sessions(session: Session, *, idle: timedelta = timedelta(0), age: timedelta) -> None:
    """Move every web session into the past: opened ``age`` ago, last seen ``idle`` ago."""
    now = utcnow()
    session.execute(
        update(WebSession).values(
            created_at=now - age,
            last_seen_at=now - idle,
            expires_at=now - age + timedelta(hours=12),
        )
    )
    session.flush()


def throttle_row(session: Session, key: str) -> SignInThrottle | None:
    """A throttle row, fresh from the database."""
    session.expire_all()
    return session.get(SignInThrottle, key)


class FrozenClock:
    """The sign-in services' clock, standing still until moved (no test waits for time)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds)


def freeze_sign_in_clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Stop the clock that sign-in (and its throttle) reads."""
    clock = FrozenClock()
    monkeypatch.setattr("citygrid.access.accounts.utcnow", clock)
    return clock
