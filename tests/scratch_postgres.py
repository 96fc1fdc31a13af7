"""A PostgreSQL database of a test's own, for tests whose work commits (live servers, CLI
runs in subprocesses, demo builds): the shared test database must stay empty for the
rolled-back tests. Unreachable PostgreSQL skips the test, or fails it in CI."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from citygrid.kit import db as kit_db
from citygrid.kit.settings import normalise_database_url
from tests.conftest import IN_CI, POSTGRES_URL


@contextmanager
def scratch_postgres(
    prefix: str = "citygrid_scratch", admin_url: str = POSTGRES_URL
) -> Iterator[str]:
    """The URL of a new, empty database on the server, dropped afterwards."""
    admin = kit_db.make_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=None)
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        if IN_CI:
            pytest.fail(f"PostgreSQL is unreachable: {exc}")
        pytest.skip("PostgreSQL is not reachable (set CITYGRID_TEST_POSTGRES_URL)")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield normalise_database_url(admin_url).rsplit("/", 1)[0] + f"/{name}"
    finally:
        kit_db.dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
