"""SQLite writers of one process take turns in the order they asked: a writer that commits
and at once writes again waits behind one that was waiting (SQLite's busy handler alone
sleeps and retries, and a busy writer could keep the lock from it past its timeout)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import text

from citygrid.kit.db import WriterGate, gate_of, make_engine

DEADLINE = 10.0


def _until(condition: Callable[[], bool]) -> None:
    """Poll until the condition holds, at most ``DEADLINE`` seconds."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < DEADLINE, "condition not reached in time"
        time.sleep(0.001)


def test_the_turn_goes_to_the_writers_in_the_order_they_asked() -> None:
    gate = WriterGate()
    assert gate.acquire(timeout=1)
    order: list[str] = []

    def writer(name: str) -> None:
        assert gate.acquire(timeout=DEADLINE)
        order.append(name)
        gate.release()

    first = threading.Thread(target=writer, args=("first",))
    first.start()
    _until(lambda: gate.waiting() == 1)
    second = threading.Thread(target=writer, args=("second",))
    second.start()
    _until(lambda: gate.waiting() == 2)

    gate.release()
    first.join(DEADLINE)
    second.join(DEADLINE)

    assert order == ["first", "second"]
    assert gate.acquire(timeout=0)  # free again


def test_a_writer_that_waits_too_long_goes_on_without_its_turn_and_leaves_the_queue() -> None:
    gate = WriterGate()
    assert gate.acquire(timeout=1)

    assert gate.acquire(timeout=0.01) is False
    assert gate.waiting() == 0
    gate.release()
    assert gate.acquire(timeout=0)


def test_a_waiting_writer_gets_the_lock_before_a_busy_one_writes_again(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'turns.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE log (who TEXT)"))
    order: list[str] = []
    busy = engine.connect()
    busy_transaction = busy.begin()
    busy.execute(text("INSERT INTO log VALUES ('busy 1')"))  # holds the turn and the lock

    def patient() -> None:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO log VALUES ('patient')"))
        order.append("patient")

    waiting = threading.Thread(target=patient)
    waiting.start()
    _until(lambda: gate_of(engine).waiting() == 1)

    busy_transaction.commit()
    order.append("busy 1")
    with busy.begin():  # at once, the next transaction of the busy writer
        busy.execute(text("INSERT INTO log VALUES ('busy 2')"))
    order.append("busy 2")
    waiting.join(DEADLINE)
    busy.close()

    assert order == ["busy 1", "patient", "busy 2"]
    with engine.connect() as connection:
        rows = [row[0] for row in connection.execute(text("SELECT who FROM log ORDER BY rowid"))]
    assert rows == ["busy 1", "patient", "busy 2"]
    engine.dispose()
