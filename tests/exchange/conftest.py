"""Fixtures of the exchange tests: the mini city, department systems acting over HTTP, and a
way to run the outbox delivery inside the test's rolled-back transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from citygrid.access.deps import current_actor
from citygrid.exchange import outbox
from citygrid.kit import i18n
from citygrid.kit.actor import Actor
from citygrid.kit.db import unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import get_settings
from citygrid.kit.web import get_session
from tests.fixtures_territory import import_mini_city


def cli_database(path: Path, monkeypatch: pytest.MonkeyPatch, **environment: str) -> str:
    """A migrated SQLite file at ``path`` with the mini city, made the CLI's database (demo
    mode, plus ``CITYGRID_<name>`` for each of ``environment``): its URL."""
    url = f"sqlite:///{path}"
    upgrade(url)
    with unit_of_work(url) as session:
        import_mini_city(session)
    monkeypatch.setenv("CITYGRID_DATABASE_URL", url)
    monkeypatch.setenv("CITYGRID_DEMO_MODE", "true")
    for name, value in environment.items():
        monkeypatch.setenv(f"CITYGRID_{name}", value)
    get_settings.cache_clear()
    return url


@pytest.fixture
def city(db_session: Session) -> Session:
    """The mini city in the test's database."""
    import_mini_city(db_session)
    db_session.flush()
    return db_session


@pytest.fixture
def act_as(app: FastAPI, db_session: Session) -> Callable[[Actor], None]:
    """Make the following requests come from an actor (a department system's API client).

    Each request runs in its own savepoint, as in its own transaction in production: a
    refused request rolls back only itself, so a test can check that it changed nothing.
    """

    def _request_session() -> Iterator[Session]:
        with db_session.begin_nested():
            yield db_session

    app.dependency_overrides[get_session] = _request_session

    def _act_as(actor: Actor) -> None:
        app.dependency_overrides[current_actor] = lambda: actor

    return _act_as


@pytest.fixture
def sessions(db_session: Session) -> outbox.SessionFactory:
    """A session factory for the outbox worker inside the test's transaction: each session
    it makes commits into a savepoint of the test's connection, rolled back after the test."""

    def _factory() -> Session:
        return Session(bind=db_session.connection(), join_transaction_mode="create_savepoint")

    return _factory


@pytest.fixture
def deliver(
    db_session: Session, sessions: outbox.SessionFactory
) -> Callable[[], outbox.DeliveryReport]:
    """Deliver every due outbox entry, as the worker would, then let the test's session see
    the result."""

    def _deliver() -> outbox.DeliveryReport:
        db_session.flush()
        report = outbox.drain(sessions, worker_id="test-worker")
        db_session.expire_all()
        return report

    return _deliver


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Service calls outside a request read the English reasons."""
    i18n.set_locale("en")
    yield
    i18n.set_locale(i18n.DEFAULT_LOCALE)
