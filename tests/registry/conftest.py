"""Fixtures of the registry tests: the mini city with the component catalogue, an actor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from citygrid.kit import i18n
from citygrid.kit.actor import Actor
from citygrid.registry.catalogue import sync_component_classes
from tests.fixtures_territory import import_mini_city


@pytest.fixture
def city(db_session: Session) -> Session:
    """The mini city and the component catalogue in the test's database."""
    import_mini_city(db_session)
    sync_component_classes(db_session)
    db_session.flush()
    return db_session


@pytest.fixture
def clerk() -> Actor:
    """A grid worker recording changes."""
    return Actor(name="worker-0042", role="grid_worker")


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Service calls outside a request speak the default locale; these tests read the
    English reasons (the API tests choose their language per request)."""
    i18n.set_locale("en")
    yield
    i18n.set_locale(i18n.DEFAULT_LOCALE)
