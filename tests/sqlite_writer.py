"""Another writer on a SQLite file, for tests that show a unit of work surviving a concurrent
write between its first read and its first write: it commits a real change (a row in the
sign-in throttle, which nothing under test reads) from a connection of its own, or is
refused at once when the write lock is held (busy timeout 0). Never a timing test: the test
calls it at the point in question."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL."""
    return url.split("///", 1)[1]


def another_writer_commits(url: str) -> bool:
    """Commit a change from another connection now: True when it committed, False when the
    write lock was held by someone else ("database is locked" at once)."""
    with closing(sqlite3.connect(sqlite_path(url), timeout=0, isolation_level=None)) as other:
        try:
            other.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            if "locked" in str(error):
                return False
            raise
        other.execute(
            "INSERT INTO sign_in_throttle (key, failures, first_failure_at, last_failure_at) "
            "VALUES (?, 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            (f"test:{uuid.uuid4().hex}",),
        )
        other.execute("COMMIT")
        return True
