"""Guessing passwords: slowed down after three failures, then locked, and answered alike
whether the account exists or not."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete
from sqlalchemy.orm import Session

from citygrid.access import accounts
from citygrid.access.models import SignInThrottle
from citygrid.kit.db import get_session_factory
from citygrid.kit.i18n import set_locale
from citygrid.kit.settings import Settings
from tests.access.auth_factories import (
    PASSWORD,
    FrozenClock,
    fast_settings,
    fast_settings_fixture,  # noqa: F401 (fixture)
    freeze_sign_in_clock,
    make_account,
    make_client,
    post_signin,
    request_scoped_app_fixture,  # noqa: F401 (fixture)
    throttle_row,
    token_for,
)
from tests.fixtures_territory import import_mini_city

ACCOUNT_KEY = "account:zhang"
ADDRESS_KEY = "address:testclient"


@pytest.fixture(autouse=True)
def _english() -> None:
    set_locale("en")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    """Time stands still unless a test moves it: answers never depend on the machine's speed."""
    return freeze_sign_in_clock(monkeypatch)


@pytest.fixture
def city(db_session: Session, settings: Settings) -> Session:
    import_mini_city(db_session)
    make_account(db_session, settings, "zhang")
    return db_session


WRONG = "wrong guess!"


def guess(client: TestClient, username: str = "zhang") -> int:
    """One wrong password; the answer's status."""
    return post_signin(client, username=username, password=WRONG).status_code


def test_three_failures_then_each_attempt_must_wait_longer(
    city: Session, client: TestClient, clock: FrozenClock
) -> None:
    assert [guess(client) for _ in range(3)] == [401, 401, 401]

    refused = post_signin(client, username="zhang", password=PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"  # 2^(3-3) s
    assert "Too many failed attempts" in refused.text
    assert "citygrid_session" not in client.cookies  # even the right password waits

    clock.advance(1)
    assert guess(client) == 401  # the 4th failure
    refused = post_signin(client, username="zhang", password=PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"  # 2^(4-3) s

    clock.advance(1)
    assert post_signin(client, username="zhang", password=PASSWORD).headers["retry-after"] == "1"
    clock.advance(1)
    assert guess(client) == 401
    assert post_signin(client, username="zhang", password=PASSWORD).headers["retry-after"] == "4"
    row = throttle_row(city, ACCOUNT_KEY)
    assert row is not None and row.failures == 5  # refused attempts are not counted


def test_ten_failures_lock_the_account_for_fifteen_minutes(
    city: Session, client: TestClient, clock: FrozenClock
) -> None:
    for failures in range(10):
        if failures >= 3:
            clock.advance(2 ** (failures - 3))
        assert guess(client) == 401

    row = throttle_row(city, ACCOUNT_KEY)
    assert row is not None and row.locked_until is not None
    locked = post_signin(client, username="zhang", password=PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(15 * 60)
    assert "citygrid_session" not in client.cookies
    clock.advance(14 * 60 + 59)
    assert post_signin(client, username="zhang", password=PASSWORD).status_code == 429

    # Fifteen minutes later the lock is gone, and a success forgets the failures.
    clock.advance(1)
    assert post_signin(client, username="zhang", password=PASSWORD).status_code == 303
    assert throttle_row(city, ACCOUNT_KEY) is None


def test_an_unknown_name_is_throttled_exactly_like_a_real_one(
    city: Session, client: TestClient, clock: FrozenClock
) -> None:
    real = [guess(client, "zhang") for _ in range(4)]
    unknown = [guess(client, "no-such-user") for _ in range(4)]

    assert real == unknown == [401, 401, 401, 429]
    real_page = post_signin(client, username="zhang", password="x" * 12)
    unknown_page = post_signin(client, username="no-such-user", password="x" * 12)
    assert real_page.status_code == unknown_page.status_code == 429


def test_a_success_clears_the_account_key(
    city: Session, client: TestClient, clock: FrozenClock
) -> None:
    guess(client)
    guess(client)

    assert post_signin(client, username="zhang", password=PASSWORD).status_code == 303
    assert throttle_row(city, ACCOUNT_KEY) is None
    address = throttle_row(city, ADDRESS_KEY)
    assert address is not None and address.failures == 2  # the address keeps its count


def test_failures_spaced_apart_are_forgotten(
    city: Session, client: TestClient, clock: FrozenClock
) -> None:
    for _ in range(3):
        guess(client)
    clock.advance(15 * 60)

    assert post_signin(client, username="zhang", password=PASSWORD).status_code == 303


def test_thirty_failures_lock_the_source_address(
    city: Session, client: TestClient, clock: FrozenClock
) -> None:
    # Ten names, three guesses each: no name is slowed, but the address collects thirty.
    for index in range(30):
        assert guess(client, f"guess-{index // 3}") == 401

    row = throttle_row(city, ADDRESS_KEY)
    assert row is not None and row.failures == 30 and row.locked_until is not None
    locked = post_signin(client, username="zhang", password=PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(15 * 60)


def test_other_addresses_are_not_locked(
    city: Session, app: FastAPI, database_url: str, client: TestClient, clock: FrozenClock
) -> None:
    app.state.settings = fast_settings(database_url, trust_proxy_headers=True)
    for index in range(30):
        post_signin(client, username=f"guess-{index // 3}", password=WRONG)

    with TestClient(app, headers={"X-Forwarded-For": "198.51.100.7"}) as elsewhere:
        assert post_signin(elsewhere, username="zhang", password=PASSWORD).status_code == 303


def test_the_thresholds_are_settings(
    city: Session, app: FastAPI, database_url: str, client: TestClient, clock: FrozenClock
) -> None:
    app.state.settings = fast_settings(
        database_url, signin_slowdown_after=1, signin_account_lock_after=2, signin_lock_minutes=5
    )
    assert guess(client) == 401
    assert post_signin(client, username="zhang", password=PASSWORD).headers["retry-after"] == "1"
    clock.advance(1)
    assert guess(client) == 401

    locked = post_signin(client, username="zhang", password=PASSWORD)
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == str(5 * 60)


# ----------------------------------------------------------------------------- the token endpoint


def test_the_token_endpoint_counts_failures_too(
    city: Session, client: TestClient, clock: FrozenClock
) -> None:
    answers = [
        token_for(client, grant_type="password", username="zhang", password=WRONG) for _ in range(4)
    ]

    assert [answer.status_code for answer in answers] == [400, 400, 400, 429]
    assert answers[-1].json()["error"] == "slow_down"
    assert answers[-1].headers["retry-after"] == "1"


def test_guessing_a_client_secret_is_throttled(
    city: Session, client: TestClient, settings: Settings, clock: FrozenClock
) -> None:
    created = make_client(city, settings)
    answers = [
        token_for(
            client,
            grant_type="client_credentials",
            client_id="public-security",
            client_secret="wrong-secret-123",
        )
        for _ in range(4)
    ]

    assert [answer.status_code for answer in answers] == [401, 401, 401, 429]
    right = token_for(
        client,
        grant_type="client_credentials",
        client_id="public-security",
        client_secret=created.secret,
    )
    assert right.status_code == 429
    assert throttle_row(city, "client:public-security") is not None


# ----------------------------------------------------------------------------- in parallel


def test_parallel_guesses_are_evaluated_one_at_a_time(
    database_url: str, settings: Settings, clock: FrozenClock
) -> None:
    """Eight guesses at once, each in its own connection and transaction (as eight app
    processes would), after one failure: only two more are evaluated, the others wait."""
    suffix = uuid.uuid4().hex[:8]
    username, address = f"ghost-{suffix}", f"192.0.2.{int(suffix, 16) % 250}-{suffix}"
    factory = get_session_factory(database_url)
    barrier = threading.Barrier(8)

    def attempt() -> str:
        barrier.wait(timeout=10)
        with factory() as session:
            result = accounts.sign_in(
                session, settings, username=username, password=WRONG, otp=None, address=address
            )
            session.commit()
        return result.outcome.value

    try:
        # One failure first: the rows exist, so only their row locks can keep order.
        with factory() as session:
            accounts.sign_in(
                session, settings, username=username, password=WRONG, otp=None, address=address
            )
            session.commit()
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = sorted(pool.map(lambda _index: attempt(), range(8)))
        with factory() as session:
            row = session.get(SignInThrottle, f"account:{username}")
            failures = row.failures if row is not None else 0
    finally:
        with factory() as session:
            session.execute(
                delete(SignInThrottle).where(
                    SignInThrottle.key.in_([f"account:{username}", f"address:{address}"])
                )
            )
            session.commit()

    assert outcomes == ["invalid"] * 2 + ["throttled"] * 6
    assert failures == 3
