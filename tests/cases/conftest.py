"""Fixtures of the cases tests: the mini city, the people of the tile story, and a way to
act as one of them over HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session

from citygrid.access.deps import current_actor
from citygrid.kit import i18n
from citygrid.kit.actor import Actor
from citygrid.kit.web import get_session
from citygrid.territory.locator import Locator
from tests.fixtures_territory import DISTRICT_CODE, MINI_GRID_CODES, STREET_CODES, import_mini_city

#: Zhang Sijun's grid, where the broken tile lies.
TILE_GRID = MINI_GRID_CODES[1]  # 440104001001002
#: A grid of the other street.
FAR_GRID = MINI_GRID_CODES[6]  # 440104002001002

ZHANG = Actor(name="zhang.sijun", role="grid_worker", scopes=(TILE_GRID,), kind="account")
"""The grid worker of the tile's grid."""
NEIGHBOUR = Actor(name="li.wei", role="grid_worker", scopes=(MINI_GRID_CODES[0],), kind="account")
"""The grid worker of the next grid (same community, not the tile's grid)."""
DISPATCHER = Actor(name="dispatch.yuexiu", role="dispatcher", scopes=(DISTRICT_CODE,))
"""The district command centre's dispatcher."""
STREET_DISPATCHER = Actor(name="dispatch.street2", role="dispatcher", scopes=(STREET_CODES[1],))
"""A dispatcher of the other street: the tile is outside her territory."""
HOUSING = Actor(
    name="officer.housing",
    role="department_officer",
    department="housing-construction",
    scopes=(DISTRICT_CODE,),
)
"""The officer of housing and construction, responsible for floor tiles."""
URBAN = Actor(
    name="officer.urban",
    role="department_officer",
    department="urban-management",
    scopes=(DISTRICT_CODE,),
)
"""An officer of urban management (another department)."""
ADMIN = Actor(name="admin", role="admin", scopes=("440100",))
"""The administrator."""


@pytest.fixture
def city(db_session: Session) -> Session:
    """The mini city in the test's database."""
    import_mini_city(db_session)
    db_session.flush()
    return db_session


@pytest.fixture
def locator(city: Session) -> Locator:
    """A locator over the mini city's grids."""
    return Locator.from_session(city)


@pytest.fixture
def act_as(app: FastAPI, db_session: Session) -> Callable[[Actor], None]:
    """Make the following requests come from an actor (sign-in is another slice).

    Each request also runs in its own savepoint, as it runs in its own transaction in
    production: a refused request rolls back only itself, so a test can check that it
    changed nothing while what came before stays.
    """

    def _request_session() -> Iterator[Session]:
        with db_session.begin_nested():
            yield db_session

    app.dependency_overrides[get_session] = _request_session

    def _act_as(actor: Actor) -> None:
        app.dependency_overrides[current_actor] = lambda: actor

    return _act_as


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """Service calls outside a request read the English reasons."""
    i18n.set_locale("en")
    yield
    i18n.set_locale(i18n.DEFAULT_LOCALE)
