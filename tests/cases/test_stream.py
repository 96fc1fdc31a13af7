"""The live feed over a real server: ``GET /api/v1/cases/stream`` delivers new and changed
cases to the subscribers whose territory holds them, resumes after ``Last-Event-ID``, never
loses an event that commits out of id order (PostgreSQL), ends when the client goes away or
the server stops, and refuses bad input."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from citygrid.app import create_app
from citygrid.cases import service
from citygrid.cases.feed import CaseFeed, feed_of
from citygrid.cases.schemas import CaseCreate
from citygrid.kit.actor import Actor
from citygrid.kit.db import get_session_factory
from citygrid.territory.locator import Locator
from tests.cases.conftest import FAR_GRID, TILE_GRID
from tests.cases.helpers import tile_report
from tests.cases.live import (
    DEADLINE,
    EventReader,
    fresh_postgres_database,
    live_settings,
    prepare_database,
)
from tests.conftest import POSTGRES_URL, _postgres_admin_engine
from tests.fixtures_territory import DISTRICT_CODE
from tests.live_server import Running, serve

STREAM = "/api/v1/cases/stream"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database of the module's own, on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('feed') / 'feed.sqlite3'}"
        return
    admin = _postgres_admin_engine()
    if admin is None:
        pytest.skip("PostgreSQL is not reachable (set CITYGRID_TEST_POSTGRES_URL)")
    admin.dispose()
    with fresh_postgres_database(POSTGRES_URL) as url:
        yield url


@pytest.fixture(scope="module")
def tokens(live_url: str) -> dict[str, str]:
    return prepare_database(live_url)


@pytest.fixture(scope="module")
def live(live_url: str, tokens: dict[str, str]) -> Iterator[Running]:
    with serve(create_app(live_settings(live_url))) as running:
        yield running


def bearer(tokens: dict[str, str], username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[username]}"}


def subscribe(live: Running, tokens: dict[str, str], username: str, **headers: str) -> EventReader:
    return EventReader(live.url + STREAM, {**bearer(tokens, username), **headers}).start()


def file_case(live: Running, tokens: dict[str, str], grid: str = TILE_GRID) -> dict[str, Any]:
    response = httpx.post(
        live.url + "/api/v1/cases",
        json=tile_report(grid),
        headers=bearer(tokens, "dispatcher"),
        timeout=DEADLINE,
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def transition(live: Running, tokens: dict[str, str], ref: str, action: str) -> None:
    response = httpx.post(
        f"{live.url}/api/v1/cases/{ref}/transitions",
        json={"action": action},
        headers=bearer(tokens, "dispatcher"),
        timeout=DEADLINE,
    )
    assert response.status_code == 200, response.text


def wait_until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {DEADLINE} s")
        time.sleep(0.01)


def test_a_new_case_reaches_the_subscribers_whose_territory_holds_it(
    live: Running, tokens: dict[str, str]
) -> None:
    district = subscribe(live, tokens, "dispatcher")
    street2 = subscribe(live, tokens, "street2-official")
    try:
        tile = file_case(live, tokens, TILE_GRID)  # street 1: not street 2's
        event = district.next_for(tile["id"])
        assert event.name == "case.created"
        assert event.id is not None and int(event.id) == event.data["event_id"]
        assert event.data["state"] == "reported"
        assert event.data["grid_code"] == TILE_GRID
        assert event.data["category"] == "C0201"
        assert "description" not in event.data and "reporter_contact_name" not in event.data

        far = file_case(live, tokens, FAR_GRID)  # street 2: both see it
        assert district.next_for(far["id"]).name == "case.created"
        seen_by_street2 = street2.next()
        assert seen_by_street2.data["ref"] == far["id"]  # the tile never came first
        assert [e.data["ref"] for e in street2.drain()] == []
    finally:
        district.close()
        street2.close()


def test_a_change_of_state_is_an_event_too(live: Running, tokens: dict[str, str]) -> None:
    reader = subscribe(live, tokens, "dispatcher")
    try:
        case = file_case(live, tokens)
        reader.next_for(case["id"])
        transition(live, tokens, case["id"], "register")
        changed = reader.next_for(case["id"])
        assert changed.name == "case.changed"
        assert (changed.data["from_state"], changed.data["to_state"]) == ("reported", "registered")
        assert changed.data["actor_role"] == "dispatcher"
        assert "actor_name" not in changed.data
    finally:
        reader.close()


def test_a_client_that_reconnects_with_last_event_id_misses_nothing(
    live: Running, tokens: dict[str, str]
) -> None:
    reader = subscribe(live, tokens, "dispatcher")
    first = file_case(live, tokens)
    last_seen = reader.next_for(first["id"])
    reader.close()

    # While the client is away: a new case, a change, and a case outside its... territory
    # is the whole district here, so everything counts.
    second = file_case(live, tokens)
    transition(live, tokens, first["id"], "register")
    third = file_case(live, tokens, FAR_GRID)

    assert last_seen.id is not None
    again = subscribe(live, tokens, "dispatcher", **{"Last-Event-ID": last_seen.id})
    try:
        caught_up = [again.next() for _ in range(3)]
        assert [(e.name, e.data["ref"]) for e in caught_up] == [
            ("case.created", second["id"]),
            ("case.changed", first["id"]),
            ("case.created", third["id"]),
        ]
        ids = [int(e.id or 0) for e in caught_up]
        assert ids == sorted(ids) and ids[0] > int(last_seen.id)
        # ... and then it is live again.
        fourth = file_case(live, tokens)
        assert again.next().data["ref"] == fourth["id"]
    finally:
        again.close()


def test_resuming_by_query_parameter_and_scope_still_applies(
    live: Running, tokens: dict[str, str]
) -> None:
    reader = subscribe(live, tokens, "street2-official")
    marker = file_case(live, tokens, FAR_GRID)
    seen = reader.next_for(marker["id"])
    reader.close()
    file_case(live, tokens, TILE_GRID)  # not street 2's
    far = file_case(live, tokens, FAR_GRID)
    again = EventReader(
        f"{live.url}{STREAM}?after={seen.id}", bearer(tokens, "street2-official")
    ).start()
    try:
        assert again.next().data["ref"] == far["id"]
    finally:
        again.close()


def test_a_closed_connection_leaves_the_feed(live_url: str, tokens: dict[str, str]) -> None:
    # A server of its own, whose feed has no other clients. On the module's server the
    # streams of the tests before may still be ending: a client's close returns as soon as
    # its own socket is shut, before the server has seen the disconnect, so a count taken
    # then would include a stream that leaves a moment later.
    with serve(create_app(live_settings(live_url))) as running:
        feed = feed_of(running.app)
        first = subscribe(running, tokens, "dispatcher")
        second = subscribe(running, tokens, "dispatcher")
        try:
            # Registered before the stream's first bytes, which ``subscribe`` waited for.
            assert feed.subscriber_count == 2
            first.close()
            wait_until(lambda: feed.subscriber_count == 1, "the closed stream left")
            # The other one is still served.
            case = file_case(running, tokens)
            assert second.next_for(case["id"]).name == "case.created"
        finally:
            first.close()
            second.close()
        wait_until(lambda: feed.subscriber_count == 0, "the last stream left")


def test_without_credentials_the_stream_is_refused(live: Running) -> None:
    response = httpx.get(live.url + STREAM, timeout=DEADLINE)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("value", ["abc", "-1", "12.5", "99999999999999999999"])
def test_a_malformed_last_event_id_is_a_clear_422(
    live: Running, tokens: dict[str, str], value: str
) -> None:
    response = httpx.get(
        live.url + STREAM,
        headers={**bearer(tokens, "dispatcher"), "Last-Event-ID": value},
        timeout=DEADLINE,
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "Last-Event-ID"


def test_stopping_the_server_ends_every_stream(live_url: str, tokens: dict[str, str]) -> None:
    with serve(create_app(live_settings(live_url))) as running:
        readers = [subscribe(running, tokens, "dispatcher") for _ in range(3)]
        started = time.monotonic()
        running.stop()
        assert not running.thread.is_alive()
        for reader in readers:
            assert reader.ended.wait(DEADLINE)
        # Well before uvicorn's graceful timeout would have cancelled them.
        assert time.monotonic() - started < 4


# ---------------------------------------------------------------- commit order (PostgreSQL)


def _file_in_open_transaction(session: Session, locator: Locator, grid: str) -> str:
    data = CaseCreate.model_validate(tile_report(grid))
    actor = Actor(name="hotline", role="dispatcher", scopes=(DISTRICT_CODE,))
    case = service.create_case(session, actor, data=data, locator=locator).case
    session.flush()
    return case.ref


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_an_event_that_commits_after_a_later_one_is_not_lost(
    live_url: str, live: Running, tokens: dict[str, str], outcome: str
) -> None:
    if not live_url.startswith("postgresql"):
        pytest.skip("SQLite writers take turns: ids cannot commit out of order")
    reader = subscribe(live, tokens, "dispatcher")
    factory = get_session_factory(live_url)
    slow = factory()
    try:
        locator = Locator.from_session(slow)
        # A slow transaction takes an event id first and has not committed ...
        slow_ref = _file_in_open_transaction(slow, locator, TILE_GRID)
        # ... when a quick one takes the next id and commits.
        quick = file_case(live, tokens, FAR_GRID)
        if outcome == "commit":
            # The quick event is held back until the slow one is settled, then both come,
            # in id order: a client's Last-Event-ID can never skip the slow one.
            assert [e.data["ref"] for e in reader.drain()] == []
            slow.commit()
            events = [reader.next(), reader.next()]
            assert [e.data["ref"] for e in events] == [slow_ref, quick["id"]]
            assert int(events[0].id or 0) < int(events[1].id or 0)
        else:
            slow.rollback()
            assert reader.next().data["ref"] == quick["id"]
    finally:
        slow.close()
        reader.close()


def test_the_feed_resolves_gaps_without_waiting_for_a_timeout(live_url: str) -> None:
    if not live_url.startswith("postgresql"):
        pytest.skip("gaps are a PostgreSQL matter")
    feed = CaseFeed(get_session_factory(live_url), live_url)
    feed._settled = 10
    # Ids 12 and 13 visible, 11 missing, a transaction (xid 500) still running.
    assert feed._settle([12, 13], xmin=500, xmax=510, now=0.0) is None
    # Next check: 11 still missing but every transaction that could hold it has ended.
    assert feed._settle([12, 13], xmin=510, xmax=510, now=0.1) == (10, 13)
    # Later ids pass the lost one without waiting again.
    assert feed._settle([14], xmin=520, xmax=520, now=0.2) == (13, 14)


def test_a_gap_stays_open_while_its_transaction_may_still_commit(live_url: str) -> None:
    if not live_url.startswith("postgresql"):
        pytest.skip("gaps are a PostgreSQL matter")
    feed = CaseFeed(get_session_factory(live_url), live_url)
    feed._settled = 10
    assert feed._settle([12], xmin=500, xmax=505, now=0.0) is None
    assert feed._settle([12], xmin=500, xmax=530, now=1.0) is None  # xid 500 still running
    assert feed._settle([11, 12], xmin=531, xmax=531, now=2.0) == (10, 12)


def test_more_clients_than_pooled_connections_connect_at_once(
    live_url: str, tokens: dict[str, str]
) -> None:
    # A stream gives its request's connection back before it waits: 40 clients connecting
    # together to a fresh server (whose pool holds at most 15 SQLite or 30 PostgreSQL
    # connections) all open, and all get the next case.
    with serve(create_app(live_settings(live_url))) as running:
        readers = [
            EventReader(running.url + STREAM, bearer(tokens, "dispatcher")) for _ in range(40)
        ]
        threads = [threading.Thread(target=reader.start, daemon=True) for reader in readers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        try:
            assert all(reader.status == 200 for reader in readers)
            case = file_case(running, tokens)
            for reader in readers:
                assert reader.next_for(case["id"]).name == "case.created"
        finally:
            for reader in readers:
                reader.close()


def test_two_app_processes_serve_the_same_feed(live: Running, tokens: dict[str, str]) -> None:
    # No state of the feed lives only in one process: a case filed through one server
    # reaches a client of another one, and a client can resume on either.
    other_app = create_app(live_settings(live.app.state.settings.database_url))
    with serve(other_app) as other:
        reader = subscribe(other, tokens, "dispatcher")
        try:
            case = file_case(live, tokens)
            seen = reader.next_for(case["id"])
        finally:
            reader.close()
        transition(live, tokens, case["id"], "register")
        again = subscribe(live, tokens, "dispatcher", **{"Last-Event-ID": seen.id or ""})
        try:
            assert again.next_for(case["id"]).data["to_state"] == "registered"
        finally:
            again.close()


def test_a_quiet_stream_sends_heartbeats(live_url: str, tokens: dict[str, str]) -> None:
    app = create_app(live_settings(live_url))
    feed_of(app, factory=lambda: CaseFeed(app.state.session_factory, live_url, heartbeat=0.1))
    with serve(app) as running:
        reader = subscribe(running, tokens, "dispatcher")
        try:
            wait_until(lambda: "keep-alive" in reader.comments, "a heartbeat")
        finally:
            reader.close()


def test_cases_filed_concurrently_all_arrive_once_in_id_order(
    live: Running, tokens: dict[str, str]
) -> None:
    reader = subscribe(live, tokens, "dispatcher")
    refs: list[str] = []
    lock = threading.Lock()

    def file_some(count: int) -> None:
        for _ in range(count):
            ref = file_case(live, tokens)["id"]
            with lock:
                refs.append(ref)

    workers = [threading.Thread(target=file_some, args=(10,)) for _ in range(4)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(DEADLINE * 3)
        assert len(refs) == 40
        events = [reader.next() for _ in range(40)]
        assert sorted(event.data["ref"] for event in events) == sorted(refs)
        ids = [int(event.id or 0) for event in events]
        assert ids == sorted(ids) and len(set(ids)) == 40
        assert reader.drain() == []
    finally:
        reader.close()
