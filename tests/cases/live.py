"""A real server for the live feed's tests and its benchmark: a migrated database of its own
(a SQLite file, or a fresh PostgreSQL database) holding the mini city and the people of the
tile story, served by uvicorn (``citygrid.kit.serve.Server``) on a free local port, and a
server-sent events reader that collects events in a background thread.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import queue
import socket
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from citygrid.access import accounts
from citygrid.access.tokens import issue_token
from citygrid.kit.actor import SYSTEM
from citygrid.kit.db import unit_of_work
from citygrid.kit.migrate import upgrade
from citygrid.kit.settings import Settings
from tests.fixtures_territory import DISTRICT_CODE, STREET_CODES, import_mini_city
from tests.scratch_postgres import scratch_postgres

DEADLINE = 10.0
PASSWORD = "Live-feed-test-2026"  # noqa: S105 - a throwaway database
FAST_HASHING: dict[str, Any] = {
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 1024,
    "password_hash_parallelism": 1,
}

#: username -> (role, scopes, department)
PEOPLE: dict[str, tuple[str, tuple[str, ...], str | None]] = {
    "dispatcher": ("dispatcher", (DISTRICT_CODE,), None),
    "street2-official": ("street_official", (STREET_CODES[1],), None),
    "housing-officer": ("department_officer", (DISTRICT_CODE,), "housing-construction"),
}


def live_settings(url: str) -> Settings:
    """Settings of a live test app: demo mode (its secret key), cheap password hashing."""
    return Settings(database_url=url, demo_mode=True, **FAST_HASHING)


def prepare_database(url: str) -> dict[str, str]:
    """Migrate, import the mini city, create the people; their bearer tokens by username."""
    upgrade(url)
    settings = live_settings(url)
    tokens: dict[str, str] = {}
    with unit_of_work(url) as session:
        import_mini_city(session)
        session.flush()
        for username, (role, scopes, department) in PEOPLE.items():
            created = accounts.create_account(
                session,
                SYSTEM,
                settings=settings,
                username=username,
                password=PASSWORD,
                role=role,
                scopes=scopes,
                department=department,
            )
            session.flush()
            tokens[username] = issue_token(
                settings.require_secret_key(),
                kind="account",
                subject_id=created.account.id,
                ttl_seconds=3600,
            )
    return tokens


def fresh_postgres_database(admin_url: str) -> AbstractContextManager[str]:
    """A new, empty PostgreSQL database (dropped afterwards): live servers commit, and the
    shared test database must stay empty for the rolled-back tests."""
    return scratch_postgres("citygrid_live", admin_url)


@dataclass
class Event:
    """A server-sent event as a client received it."""

    id: str | None
    name: str
    data: dict[str, Any]
    received: float


@dataclass
class EventReader:
    """Reads a server-sent event stream in a background thread (http.client, so that
    ``close`` can shut the socket down and end a blocked read at once)."""

    url: str
    headers: dict[str, str]
    events: queue.Queue[Event] = field(default_factory=queue.Queue)
    status: int | None = None
    opened: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)
    comments: list[str] = field(default_factory=list)
    _connection: http.client.HTTPConnection | None = None

    def start(self) -> EventReader:
        """Connect and wait until the stream is open (its first comment arrived)."""
        threading.Thread(target=self._run, daemon=True).start()
        if not self.opened.wait(DEADLINE):
            raise AssertionError("the event stream did not open")
        return self

    def _run(self) -> None:
        parts = urlsplit(self.url)
        try:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
            self._connection = connection
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            connection.request("GET", path, headers=self.headers)
            response = connection.getresponse()
            self.status = response.status
            if response.status != 200:
                response.read()
                return
            if connection.sock is not None:
                connection.sock.settimeout(None)
            self._parse(response)
        except Exception:  # noqa: S110 - closed from the test's thread: the stream just ends
            pass
        finally:
            self.opened.set()
            self.ended.set()

    def _parse(self, response: http.client.HTTPResponse) -> None:
        event_id: str | None = None
        name = "message"
        data: list[str] = []
        while True:
            raw = response.readline()
            if not raw:
                return
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                self.opened.set()
                continue
            if not line:
                if data:
                    self.events.put(
                        Event(event_id, name, json.loads("\n".join(data)), time.monotonic())
                    )
                name, data = "message", []
                continue
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "id":
                event_id = value
            elif key == "event":
                name = value
            elif key == "data":
                data.append(value)

    def next(self, timeout: float = DEADLINE) -> Event:
        """The next event, waiting at most ``timeout`` seconds."""
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout} s") from None

    def next_for(self, ref: str, timeout: float = DEADLINE) -> Event:
        """The next event of a case, skipping others."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.next(max(0.0, deadline - time.monotonic()))
            if event.data.get("ref") == ref:
                return event

    def drain(self) -> list[Event]:
        """The events received so far and not yet taken."""
        taken = []
        while True:
            try:
                taken.append(self.events.get_nowait())
            except queue.Empty:
                return taken

    def close(self) -> None:
        """Disconnect (at once, even while the reader waits for data)."""
        connection = self._connection
        if connection is not None and connection.sock is not None:
            with contextlib.suppress(OSError):
                connection.sock.shutdown(socket.SHUT_RDWR)
            connection.close()
        assert self.ended.wait(DEADLINE), "the reader did not stop"
