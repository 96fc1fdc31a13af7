"""Fixtures of the territory tests: the mini city, and English messages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from citygrid.kit import i18n
from tests.fixtures_territory import import_mini_city, mini_city_collection

__all__ = ["import_mini_city"]


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    # Reasons are asserted in English; the default locale (zh_CN) comes back afterwards.
    i18n.set_locale("en")
    yield
    i18n.set_locale(i18n.DEFAULT_LOCALE)


@pytest.fixture
def mini_city(db_session: Session) -> Session:
    """The test database with the mini city imported."""
    import_mini_city(db_session)
    return db_session


@pytest.fixture
def collection() -> dict[str, Any]:
    """A fresh copy of the mini city's FeatureCollection to spoil."""
    return mini_city_collection()
