"""Database engine and sessions for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from citygrid.kit.settings import get_settings, normalise_database_url

#: Execution option: "IMMEDIATE" makes a SQLite transaction take the write lock at its start.
SQLITE_BEGIN = "sqlite_begin"

_engines: dict[str, Engine] = {}
_session_factories: dict[str, sessionmaker[Session]] = {}


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy own transactions, then set the pragmas every connection needs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE would serialise readers; DEFERRED is right for a web app with short writes.
        # A unit of work that reads and then must write (the access gateway: a read and its
        # log entry) asks for IMMEDIATE with the execution option sqlite_begin="IMMEDIATE":
        # a deferred one fails with "database is locked" if another writer committed between
        # its read and its write (a stale WAL snapshot cannot be upgraded to a write).
        immediate = connection.get_execution_options().get(SQLITE_BEGIN) == "IMMEDIATE"
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def begin_write(session: Session) -> None:
    """Before a unit of work that reads and then writes, on SQLite: commit what the session
    did so far (who is calling: the session cookie's row) and go on in a transaction that
    holds the write lock from its start. A deferred transaction that has read cannot write
    while another connection holds the write lock, nor after one committed since its read:
    SQLite answers "database is locked" at once, whatever the busy timeout. Such units of
    work take turns; readers elsewhere do not wait. Nothing to do on PostgreSQL; inside a
    savepoint that a caller (a test) opened, only a flush: the opener commits."""
    if session.get_bind().dialect.name != "sqlite":
        return
    if session.in_nested_transaction():
        session.flush()
        return
    session.commit()
    session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})


def end_write(session: Session) -> None:
    """Commit what the session wrote now, so that SQLite's write lock is not held for the
    rest of a request that only reads from here on (inside a caller's savepoint: flush)."""
    if session.in_nested_transaction():
        session.flush()
    else:
        session.commit()


#: SQLite settings of a connection that writes batches of thousands of rows (the bulk
#: import): a 64 MiB page cache (the default 2 MiB holds a small part of the indexes each
#: batch looks up and extends, so every batch read them again) and a checkpoint every
#: 10,000 WAL pages (40 MiB) instead of 1,000: the index pages every batch rewrites are then
#: copied into the database once per several batches. The WAL stays bounded.
BULK_WRITE_PRAGMAS = ("PRAGMA cache_size=-65536", "PRAGMA wal_autocheckpoint=10000")


def tune_for_bulk_writes(session: Session) -> None:
    """Give the session's SQLite connection the settings of a bulk writer
    (``BULK_WRITE_PRAGMAS``; they stay with the pooled connection, whose page cache is then
    warm for the next batch). Nothing on PostgreSQL."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        for pragma in BULK_WRITE_PRAGMAS:
            connection.exec_driver_sql(pragma)


def make_engine(url: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas and pool settings citygrid relies on."""
    settings = get_settings()
    url = normalise_database_url(url or settings.database_url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    return create_engine(url, **kwargs)


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for a URL (the settings' URL by default)."""
    key = normalise_database_url(url or get_settings().database_url)
    engine = _engines.get(key)
    if engine is None:
        engine = _engines[key] = make_engine(key)
    return engine


def get_session_factory(url: str | None = None) -> sessionmaker[Session]:
    """A session factory bound to the engine for a URL."""
    key = normalise_database_url(url or get_settings().database_url)
    factory = _session_factories.get(key)
    if factory is None:
        factory = _session_factories[key] = sessionmaker(
            bind=get_engine(key), expire_on_commit=False, autoflush=False
        )
    return factory


@contextmanager
def unit_of_work(url: str | None = None) -> Iterator[Session]:
    """A session that commits at the end of the block or rolls back on error."""
    session = get_session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def dispose_engines() -> None:
    """Close every pooled connection (tests, forks)."""
    for engine in _engines.values():
        engine.dispose()
    _engines.clear()
    _session_factories.clear()
