"""The live feed of cases: server-sent events of new and changed cases, per territorial scope.

One ``CaseFeed`` per app process reads the case event log (``case_events``) for every
connected client at once and fans the events out; nothing in it is state that is not rebuilt
from the database, so any number of app processes serve the feed side by side, and a client
that reconnects to another process with ``Last-Event-ID`` misses nothing.

Wake-ups, without any client polling:

- PostgreSQL: a trigger (migration 0009) runs ``pg_notify('citygrid_case_events')`` in the
  transaction that writes an event, so it is delivered at commit; one ``LISTEN`` connection
  per process wakes the reader. A slow safety check (every ``PG_SAFETY_INTERVAL`` s) covers
  a lost listener connection.
- SQLite: one reader per process compares ``max(id)`` (the primary key: one index probe)
  every ``SQLITE_INTERVAL`` s, shared by all connected clients.

Ids and commit order. Event ids come from a sequence at insert time; on PostgreSQL a
transaction that took id 10 can commit after one that took id 11. A reader that moved its
cursor to 11 would then never see 10. So the feed releases events strictly in id order, up to
the "settled" mark below which every id is either visible or will never be: a missing id
below a visible one is a gap, held open until the transactions that could still hold it have
finished. The transaction that takes an event id has already written (the case row comes
first, see ``citygrid.cases.service``), so it has a transaction id below the ``xmax`` of any
snapshot taken after the gap was seen; once a later snapshot's ``xmin`` reaches that
``xmax``, the gap's transaction has committed (and the next read sees the event) or rolled
back (the id is gone). A rolled-back id costs one extra check, not a timeout. On SQLite
writers take turns, so an id that is visible has no in-flight predecessor.

Scope: each group of subscribers with the same territorial scopes is served by one query
whose ``grid_code`` range condition does the filtering in SQL (an indexed range scan).

Client disconnects end the stream at once; ``CaseFeed.close`` (called when the server shuts
down, see ``citygrid.kit.serve.Server``) ends every stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from citygrid.cases import repository

logger = logging.getLogger("citygrid.cases.feed")

CHANNEL = "citygrid_case_events"
SQLITE_INTERVAL = 0.1
"""Seconds between two ``max(id)`` checks on SQLite."""
PG_SAFETY_INTERVAL = 1.0
"""Seconds between two checks on PostgreSQL when no notification came."""
GAP_INTERVAL = 0.05
"""Seconds between checks while a gap is open (an in-flight or rolled-back id)."""
GAP_GIVE_UP = 30.0
"""A gap older than this is taken to be a lost id (never reached: a safety net)."""
START_WINDOW = 1000
"""Ids behind the newest one checked for gaps when the reader starts."""
READ_LIMIT = 10_000
"""Ids read per check; more wait for the next one (at once)."""
BATCH = 500
"""Events per query when catching up or fanning out."""
HEARTBEAT = 15.0
"""Seconds of silence after which a comment keeps proxies from closing the stream."""
RETRY_MS = 2000
"""How long a browser waits before reconnecting (the SSE ``retry:`` field)."""
MAX_BACKLOG = 2000
"""Batches a subscriber may fall behind before its stream is ended (it reconnects with
Last-Event-ID and catches up from the database)."""
IDLE_STOP = 30.0
"""Seconds without subscribers after which the reader stops (it restarts on demand)."""

Scopes = tuple[str, ...] | None
EventRow = tuple[int, str, dict[str, Any]]


def encode_event(event_id: int, name: str, payload: dict[str, Any]) -> bytes:
    """One server-sent event: ``id`` (the case event's id), ``event`` (its name) and the
    payload as JSON with the id and name in it."""
    data = json.dumps(
        {"event_id": event_id, "event": name, **payload}, ensure_ascii=False, separators=(",", ":")
    )
    return f"id: {event_id}\nevent: {name}\ndata: {data}\n\n".encode()


@dataclass(eq=False)
class Subscription:
    """A connected client: its scopes, the events it still wants, and its queue."""

    scopes: Scopes
    after: int
    start: int
    skip: frozenset[int] = frozenset()
    queue: asyncio.Queue[list[tuple[int, bytes]] | None] = field(default_factory=asyncio.Queue)

    def wants(self, event_id: int) -> bool:
        """True for an event this subscriber has not had."""
        return event_id > self.after and event_id not in self.skip


@dataclass
class _Gap:
    noticed: float
    xmax: int | None = None


class CaseFeed:
    """The process's reader of the case event log and its subscribers."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        database_url: str,
        *,
        sqlite_interval: float = SQLITE_INTERVAL,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self._factory = session_factory
        self._url = database_url
        self._postgresql = make_url(database_url).get_backend_name() == "postgresql"
        self._sqlite_interval = sqlite_interval
        self.heartbeat = heartbeat
        self._subscribers: set[Subscription] = set()
        self._settled = 0
        self._held: set[int] = set()  # visible ids above the settled mark
        self._gaps: dict[int, _Gap] = {}
        self._lost: set[int] = set()  # ids above the settled mark that will never come
        self._wake: asyncio.Event | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._start_lock: asyncio.Lock | None = None
        self._closed = False

    # ------------------------------------------------------------------ subscribers

    @property
    def subscriber_count(self) -> int:
        """How many clients are connected to this process's feed."""
        return len(self._subscribers)

    async def subscribe(self, scopes: Scopes, last_event_id: int | None) -> Subscription:
        """Register a client: from ``last_event_id`` on (caught up from the database), or
        from now on."""
        await self._ensure_started()
        # Between here and the registration nothing else runs (no await): the subscriber
        # gets exactly the events released after this point, and catches up to it.
        if last_event_id is None:
            subscription = Subscription(
                scopes, after=self._settled, start=self._settled, skip=frozenset(self._held)
            )
        else:
            subscription = Subscription(scopes, after=last_event_id, start=self._settled)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget a client (its stream ended)."""
        self._subscribers.discard(subscription)

    async def stream(self, subscription: Subscription) -> AsyncIterator[bytes]:
        """The bytes of a client's event stream: catch-up, then live events and heartbeats.
        Ends when the feed closes or the client falls too far behind."""
        try:
            yield f"retry: {RETRY_MS}\n: connected\n\n".encode()
            cursor = subscription.after
            while cursor < subscription.start:
                rows = await asyncio.to_thread(
                    self._read_events, cursor, subscription.start, subscription.scopes
                )
                for event_id, name, payload in rows:
                    yield encode_event(event_id, name, payload)
                if len(rows) < BATCH:
                    break
                cursor = rows[-1][0]
            while True:
                try:
                    batch = await asyncio.wait_for(subscription.queue.get(), self.heartbeat)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if batch is None:
                    return
                chunk = b"".join(data for event_id, data in batch if subscription.wants(event_id))
                if chunk:
                    yield chunk
        finally:
            self.unsubscribe(subscription)

    def close(self) -> None:
        """End every stream and stop reading (the server is shutting down)."""
        self._closed = True
        for subscription in list(self._subscribers):
            subscription.queue.put_nowait(None)
        self._subscribers.clear()
        for task in (self._reader, self._listener):
            if task is not None and not task.done():
                task.cancel()
        if self._wake is not None:
            self._wake.set()

    # ------------------------------------------------------------------ the reader

    async def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # A new event loop (a restarted server, a test): start afresh on it.
            self._loop = loop
            self._reader = self._listener = None
            self._start_lock = asyncio.Lock()
            self._wake = asyncio.Event()
        assert self._start_lock is not None  # noqa: S101 - set just above
        async with self._start_lock:
            if self._closed:
                raise RuntimeError("the case feed is closed")
            if self._reader is not None and not self._reader.done():
                return
            await asyncio.to_thread(self._start_state)
            self._reader = asyncio.create_task(self._read_loop(), name="citygrid-case-feed")
            if self._postgresql:
                self._listener = asyncio.create_task(self._listen(), name="citygrid-case-listen")

    def _start_state(self) -> None:
        with self._factory() as session:
            newest = repository.max_event_id(session)
            self._gaps.clear()
            self._held.clear()
            self._lost.clear()
            if not self._postgresql or newest == 0:
                self._settled = newest
                return
            low = max(0, newest - START_WINDOW)
            visible = repository.event_ids_between(session, low=low + 1, high=newest)
            now = time.monotonic()
            present = set(visible)
            for event_id in range(low + 1, newest + 1):
                if event_id not in present:
                    self._gaps[event_id] = _Gap(noticed=now)
            self._settled = min(self._gaps) - 1 if self._gaps else newest
            self._held = {event_id for event_id in visible if event_id > self._settled}

    async def _read_loop(self) -> None:
        idle_since: float | None = None
        while not self._closed:
            try:
                # The database is read in a thread; the marks move here, on the event loop,
                # where subscribers register: a new subscriber sees a consistent mark.
                seen = await asyncio.to_thread(self._look, self._settled)
                released = self._take(seen)
                if released is not None:
                    await self._fan_out(*released)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # The type only: a driver's message may quote values.
                logger.warning("case feed: reading the event log failed (%s)", type(error).__name__)
                await asyncio.sleep(1.0)
            if self._subscribers:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > IDLE_STOP:
                return
            await self._sleep()

    async def _sleep(self) -> None:
        wake = self._wake
        assert wake is not None  # noqa: S101 - set when the reader starts
        if self._gaps:
            timeout = GAP_INTERVAL
        elif self._postgresql:
            timeout = PG_SAFETY_INTERVAL
        else:
            timeout = self._sqlite_interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)
        wake.clear()

    def _look(self, settled: int) -> tuple[list[int], int, int]:
        """Read (in a thread) the ids above the settled mark: on SQLite just the newest id;
        on PostgreSQL the visible ids and a snapshot's ``(xmin, xmax)`` taken before them."""
        with self._factory() as session:
            if not self._postgresql:
                newest = repository.max_event_id(session)
                return ([newest] if newest > settled else []), 0, 0
            xmin, xmax = repository.postgresql_snapshot_bounds(session)
            visible = repository.event_ids_after(session, after_id=settled, limit=READ_LIMIT)
            return visible, xmin, xmax

    def _take(self, seen: tuple[list[int], int, int]) -> tuple[int, int] | None:
        visible, xmin, xmax = seen
        if not self._postgresql:
            # Writers take turns on SQLite: every id below a visible one is settled.
            if not visible or visible[-1] <= self._settled:
                return None
            low, self._settled = self._settled, visible[-1]
            return low, self._settled
        return self._settle(visible, xmin, xmax, time.monotonic())

    def _settle(
        self, visible: Sequence[int], xmin: int, xmax: int, now: float
    ) -> tuple[int, int] | None:
        """PostgreSQL: take in the ids now visible above the settled mark, close the gaps
        that can no longer fill, open new ones, and move the mark."""
        self._held.update(event_id for event_id in visible if event_id > self._settled)
        top = visible[-1] if visible else self._settled
        for event_id, gap in list(self._gaps.items()):
            if event_id in self._held:
                del self._gaps[event_id]  # its transaction committed
                continue
            if event_id > top:
                continue  # not covered by this (truncated) read
            if gap.xmax is None:
                # The first snapshot taken after the gap was seen: every transaction that
                # could hold the id has a transaction id below its xmax.
                gap.xmax = xmax
            if xmin >= gap.xmax:
                # Every such transaction had finished before the ids were read: the id's
                # transaction rolled back.
                del self._gaps[event_id]
                self._lost.add(event_id)
            elif now - gap.noticed > GAP_GIVE_UP:
                logger.warning("case feed: gave up waiting for event id %d", event_id)
                del self._gaps[event_id]
                self._lost.add(event_id)
        for event_id in range(self._settled + 1, top + 1):
            if not (event_id in self._held or event_id in self._gaps or event_id in self._lost):
                self._gaps[event_id] = _Gap(noticed=now)
        high = (min(self._gaps) - 1) if self._gaps else max(self._held, default=self._settled)
        if high <= self._settled:
            return None
        # A lost id lies below a visible one: with no gap left, the mark passes it.
        low, self._settled = self._settled, high
        self._held = {event_id for event_id in self._held if event_id > high}
        self._lost = {event_id for event_id in self._lost if event_id > high}
        return low, high

    async def _fan_out(self, low: int, high: int) -> None:
        groups: dict[Scopes, list[Subscription]] = {}
        for subscription in self._subscribers:
            groups.setdefault(subscription.scopes, []).append(subscription)
        for scopes, members in groups.items():
            cursor = low
            while cursor < high:
                rows = await asyncio.to_thread(self._read_events, cursor, high, scopes)
                if rows:
                    batch = [(event_id, encode_event(event_id, n, p)) for event_id, n, p in rows]
                    for subscription in members:
                        self._deliver(subscription, batch)
                if len(rows) < BATCH:
                    break
                cursor = rows[-1][0]

    def _deliver(self, subscription: Subscription, batch: list[tuple[int, bytes]]) -> None:
        if subscription.queue.qsize() >= MAX_BACKLOG:
            # Too far behind: end the stream; the browser reconnects with Last-Event-ID.
            self.unsubscribe(subscription)
            subscription.queue.put_nowait(None)
            return
        subscription.queue.put_nowait(batch)

    def _read_events(self, after_id: int, up_to: int, scopes: Scopes) -> list[EventRow]:
        with self._factory() as session:
            return repository.events_in_range(
                session, after_id=after_id, up_to=up_to, scopes=scopes, limit=BATCH
            )

    async def _listen(self) -> None:
        """PostgreSQL: wake the reader on every notification of the channel."""
        import psycopg

        dsn = make_url(self._url).set(drivername="postgresql").render_as_string(False)
        backoff = 0.5
        while not self._closed:
            try:
                connection = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
                async with connection:
                    await connection.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.5
                    self._poke()  # whatever was written while nobody listened
                    async for _notification in connection.notifies():
                        self._poke()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                logger.warning("case feed: LISTEN connection lost (%s)", type(error).__name__)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()


def feed_of(app: Any, *, factory: Callable[[], CaseFeed] | None = None) -> CaseFeed:
    """The app's case feed, made on first use; the server's shutdown closes it."""
    feed: CaseFeed | None = getattr(app.state, "case_feed", None)
    if feed is None:
        if factory is not None:
            feed = factory()
        else:
            feed = CaseFeed(app.state.session_factory, app.state.settings.database_url)
        app.state.case_feed = feed
        closers: list[Callable[[], None]] = getattr(app.state, "on_server_exit", [])
        closers.append(feed.close)
        app.state.on_server_exit = closers
    return feed
