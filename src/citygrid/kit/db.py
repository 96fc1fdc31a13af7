"""Database engine and sessions for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
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


class WriterGate:
    """This process's SQLite writers take turns in the order they asked (first come, first
    served), one write transaction at a time.

    SQLite's own busy handler sleeps and tries again: a writer that commits and at once
    begins its next transaction (a department system pushing batch after batch) takes the
    lock again before a sleeping one wakes, and the outbox worker could wait past its busy
    timeout. Here a waiting writer is handed the turn when the one before commits. A writer
    that waits longer than ``timeout`` goes on without its turn (SQLite's lock still
    serialises; the busy timeout then decides): a thread that holds a turn and waits for
    another connection of its own cannot hang. Writers of other processes are not in the
    queue."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiting: deque[threading.Event] = deque()

    def acquire(self, timeout: float) -> bool:
        """Wait for the turn; True when it is this writer's, False after ``timeout``."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Event()
            self._waiting.append(turn)
        if turn.wait(timeout):
            return True
        with self._mutex:
            if turn in self._waiting:
                self._waiting.remove(turn)
                return False
        return True  # handed over between the timeout and the mutex

    def waiting(self) -> int:
        """How many writers wait for their turn."""
        with self._mutex:
            return len(self._waiting)

    def release(self) -> None:
        """End this writer's turn: the next in line has it at once."""
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().set()
            else:
                self._held = False


_TURN = "citygrid.sqlite_writer_turn"
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN IMMEDIATE")


def _take_turns(engine: Engine, gate: WriterGate, timeout: float) -> None:
    """A connection's first write of a transaction waits for its turn at the gate; its
    commit or rollback (or its return to the pool) ends the turn."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before_write(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        info = connection.info
        if info.get(_TURN) is None and statement.lstrip()[:15].upper().startswith(_WRITES):
            info[_TURN] = gate.acquire(timeout)

    def _end(info: dict[str, Any]) -> None:
        if info.pop(_TURN, None):
            gate.release()

    @event.listens_for(engine, "commit")
    def _on_commit(connection: Any) -> None:
        _end(connection.info)

    @event.listens_for(engine, "rollback")
    def _on_rollback(connection: Any) -> None:
        _end(connection.info)

    # A connection returned to the pool, invalidated after an error or detached ends its
    # turn too: a turn that is never ended would make every later writer wait its timeout.
    @event.listens_for(engine.pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            _end(record.info)

    @event.listens_for(engine.pool, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, record: Any, _exception: Any) -> None:
        if record is not None:
            _end(record.info)

    @event.listens_for(engine.pool, "detach")
    def _on_detach(_dbapi_connection: Any, record: Any) -> None:
        _end(record.info)


_GATES: dict[int, WriterGate] = {}


def gate_of(engine: Engine) -> WriterGate:
    """The writer gate of a SQLite engine (one per engine: the process's connections to
    one file share the engine)."""
    return _GATES[id(engine)]


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    gate = _GATES[id(engine)] = WriterGate()
    _take_turns(engine, gate, busy_timeout_ms / 1000)

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
