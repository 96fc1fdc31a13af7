"""A web session's activity (once a minute) and the removal of an expired one are writes
after the read of the session's row, at the start of every request. On SQLite a deferred
transaction that has read cannot write once another connection committed meanwhile
("database is locked" at once, whatever the busy timeout); the request then failed. Both
writes take the write lock first and commit at once, so a writer in between does no harm."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from citygrid.access import auth_repository, sessions
from citygrid.access.models import WebSession
from citygrid.kit.db import dispose_engines, unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings, sqlite_url
from tests.access.auth_factories import fast_settings, make_account
from tests.fixtures_territory import import_mini_city
from tests.sqlite_writer import another_writer_commits


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[str]:
    """A SQLite file of this test's own: what the test does commits for real."""
    url = sqlite_url(tmp_path / "sessions.sqlite3")
    upgrade(url)
    with unit_of_work(url) as session:
        import_mini_city(session)
    yield url
    dispose_engines()


def _signed_in(url: str, settings: Settings, *, last_seen_ago: timedelta) -> str:
    """A grid worker's web session, last seen that long ago: its cookie token."""
    with unit_of_work(url) as session:
        account = make_account(session, settings, "zhang").account
        token = sessions.start_session(
            session, settings, account_id=account.id, client_address=None
        )
        session.execute(update(WebSession).values(last_seen_at=utcnow() - last_seen_ago))
    return token


@pytest.fixture
def writer_after_the_read(
    own_database: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[bool]]:
    """Another connection commits right after the session's row is read (whether it could)."""
    attempts: list[bool] = []
    read = auth_repository.web_session_row

    def read_then_another_writer(*args: Any, **kwargs: Any) -> Any:
        found = read(*args, **kwargs)
        attempts.append(another_writer_commits(own_database))
        return found

    monkeypatch.setattr(auth_repository, "web_session_row", read_then_another_writer)
    yield attempts


def test_a_session_idle_for_minutes_records_its_activity_though_another_writer_committed(
    own_database: str, writer_after_the_read: list[bool]
) -> None:
    settings = fast_settings(own_database)
    token = _signed_in(own_database, settings, last_seen_ago=timedelta(minutes=5))

    with unit_of_work(own_database) as session:
        found = sessions.resume_session(session, settings, token=token)

    assert found is not None and found.username == "zhang"
    assert writer_after_the_read == [True]
    with unit_of_work(own_database) as session:
        seen = session.scalars(select(WebSession.last_seen_at)).one()
    assert abs((utcnow() - seen.replace(tzinfo=utcnow().tzinfo)).total_seconds()) < 60


def test_an_expired_session_is_removed_though_another_writer_committed(
    own_database: str, writer_after_the_read: list[bool]
) -> None:
    settings = fast_settings(own_database)
    idle = timedelta(minutes=settings.session_idle_minutes + 1)
    token = _signed_in(own_database, settings, last_seen_ago=idle)

    with unit_of_work(own_database) as session:
        found = sessions.resume_session(session, settings, token=token)

    assert found is None
    assert writer_after_the_read == [True]
    with unit_of_work(own_database) as session:
        assert session.scalars(select(WebSession)).all() == []
