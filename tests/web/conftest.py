"""Fixtures of the web tests: a populated mini city and a browser-like client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.web.city import populate


@pytest.fixture
def city(db_session: Session) -> Session:
    """The mini city with a few registry rows in ``tests.web.city.FULL_GRID``."""
    populate(db_session)
    return db_session


@pytest.fixture
def visitor(app: FastAPI) -> Iterator[TestClient]:
    """A client that asks for pages as a browser does (HTML, no language preference)."""
    with TestClient(app, headers={"Accept": "text/html,application/xhtml+xml"}) as client:
        yield client
