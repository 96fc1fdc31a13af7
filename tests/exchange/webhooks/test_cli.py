"""``citygrid exchange webhooks ...`` as an operator types it, on a real SQLite file:
list the subscriptions, read a delivery log, replay the dead, send what is due, renew a
lease (its callback challenged by a real receiver)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from citygrid.cli import app
from citygrid.exchange import outbox
from citygrid.exchange import service as exchange
from citygrid.exchange.webhooks import repository, service
from citygrid.exchange.webhooks.models import Subscription
from citygrid.kit.db import get_session_factory, unit_of_work
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from tests.exchange.conftest import cli_database
from tests.exchange.story import PUBLIC_SECURITY, event, family
from tests.exchange.webhooks.conftest import CA_SYSTEM, subscribe_through_service
from tests.exchange.webhooks.receiver import Receiver
from tests.sqlite_writer import another_writer_commits

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite file with the mini city, as the CLI's database."""
    return cli_database(tmp_path / "cli.sqlite3", monkeypatch, WEBHOOK_MAX_ATTEMPTS="1")


def test_an_operator_finds_a_dead_delivery_and_replays_it(
    database: str, receiver: Receiver
) -> None:
    with unit_of_work(database) as session:
        subscription = subscribe_through_service(
            session, Settings(database_url=database, demo_mode=True), receiver.url
        )
        ref = subscription.ref
        home = family(session)
        exchange.publish_event(session, PUBLIC_SECURITY, data=event("death", home.head))
    outbox.drain(get_session_factory(database), worker_id="fan-out")
    receiver.status = 500

    failed = runner.invoke(app, ["exchange", "webhooks", "send"])
    listed = runner.invoke(app, ["exchange", "webhooks", "list"])
    dead = runner.invoke(app, ["exchange", "webhooks", "deliveries", ref, "--state", "dead"])

    assert failed.exit_code == 1, failed.output
    assert "dead 1" in failed.output
    assert ref in listed.output and "civil-affairs" in listed.output and "dead 1" in listed.output
    [line] = dead.output.splitlines()
    uid = line.split("\t")[0]
    assert "\tdead\t1\t500/" in line
    assert home.head.id_number not in dead.output

    receiver.status = 200
    replayed = runner.invoke(app, ["exchange", "webhooks", "replay", ref, "--delivery", uid])
    sent = runner.invoke(app, ["exchange", "webhooks", "send"])

    assert replayed.exit_code == 0 and "1 deliveries will be sent again" in replayed.output
    assert sent.exit_code == 0 and "delivered 1" in sent.output
    assert [item.delivery for item in receiver.received] == [uid]
    unknown = runner.invoke(app, ["exchange", "webhooks", "replay", "whs_nope", "--state", "dead"])
    assert unknown.exit_code == 2


@pytest.fixture
def english(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The CLI's database, its messages in English (the default is Chinese)."""
    return cli_database(tmp_path / "cli.sqlite3", monkeypatch, DEFAULT_LOCALE="en")


def _stored(database: str, ref: str) -> tuple[str, int | None, datetime | None]:
    with unit_of_work(database) as session:
        row = session.scalars(select(Subscription).where(Subscription.ref == ref)).one()
        return row.state.value, row.lease_seconds, row.expires_at


def _subscribed(database: str, receiver: Receiver) -> str:
    """Civil affairs' system subscribes its receiver to deaths: the subscription's id."""
    with unit_of_work(database) as session:
        settings = Settings(database_url=database, demo_mode=True)
        return subscribe_through_service(session, settings, receiver.url).ref


def test_an_operator_renews_a_lease_for_the_subscription_s_department(
    english: str, receiver: Receiver
) -> None:
    ref = _subscribed(english, receiver)
    with unit_of_work(english) as session:
        session.execute(
            update(Subscription)
            .where(Subscription.ref == ref)
            .values(expires_at=utcnow() - timedelta(days=1))
        )
    listed = runner.invoke(app, ["exchange", "webhooks", "--help"])

    renewed = runner.invoke(
        app, ["exchange", "webhooks", "renew", ref, "--lease-seconds", str(90 * 86400)]
    )

    assert "renew" in listed.output
    assert renewed.exit_code == 0, renewed.output
    assert ref in renewed.output and "active until" in renewed.output
    registration, renewal = receiver.challenges
    assert renewal["hub.mode"] == "subscribe" and renewal["hub.lease_seconds"] == str(90 * 86400)
    assert renewal["hub.challenge"] != registration["hub.challenge"]
    state, lease, expires_at = _stored(english, ref)
    assert (state, lease) == ("active", 90 * 86400)
    assert expires_at is not None
    left = expires_at.replace(tzinfo=UTC) - datetime.now(UTC)
    assert abs(left.total_seconds() - 90 * 86400) < 60
    # Without --lease-seconds: the longest lease.
    longest = runner.invoke(app, ["exchange", "webhooks", "renew", ref])
    assert longest.exit_code == 0, longest.output
    assert receiver.challenges[-1]["hub.lease_seconds"] == str(365 * 86400)


@pytest.mark.parametrize(
    ("lease", "says"),
    [
        ("60", "--lease-seconds: must be between 3600 and 31536000 seconds"),
        (str(365 * 86400 + 1), "--lease-seconds: must be between 3600 and 31536000 seconds"),
        ("forever", "--lease-seconds"),
        ("86400.5", "--lease-seconds"),
    ],
)
def test_a_bad_lease_is_refused_naming_the_option_and_nothing_changes(
    english: str, receiver: Receiver, lease: str, says: str
) -> None:
    ref = _subscribed(english, receiver)
    before = _stored(english, ref)

    refused = runner.invoke(app, ["exchange", "webhooks", "renew", ref, "--lease-seconds", lease])

    assert refused.exit_code == 2, refused.output
    assert says in refused.output
    assert len(receiver.challenges) == 1  # the registration's only
    assert _stored(english, ref) == before


def test_a_callback_that_stops_echoing_keeps_the_subscription_as_it_was(
    english: str, receiver: Receiver
) -> None:
    ref = _subscribed(english, receiver)
    before = _stored(english, ref)
    receiver.challenge = "wrong"

    refused = runner.invoke(app, ["exchange", "webhooks", "renew", ref, "--lease-seconds", "86400"])

    assert refused.exit_code == 2, refused.output
    assert "callback_url" in refused.output and "challenge_mismatch" in refused.output
    assert len(receiver.challenges) == 2
    assert _stored(english, ref) == before


def test_an_unknown_or_cancelled_subscription_is_not_found(
    english: str, receiver: Receiver
) -> None:
    ref = _subscribed(english, receiver)
    with unit_of_work(english) as session:
        service.cancel(session, CA_SYSTEM, ref=ref)

    unknown = runner.invoke(app, ["exchange", "webhooks", "renew", "whs_nosuchthing"])
    cancelled = runner.invoke(app, ["exchange", "webhooks", "renew", ref])

    assert unknown.exit_code == 2 and "No such subscription" in unknown.output
    assert cancelled.exit_code == 2 and "No such subscription" in cancelled.output
    assert len(receiver.challenges) == 1
    assert _stored(english, ref)[0] == "cancelled"


def test_a_renewal_survives_a_writer_committing_while_it_renews(
    english: str, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a transaction that has read cannot write once another writer committed
    ("database is locked" at once): the renewal writes first, then reads the subscription
    back, so the other writer waits for its turn instead."""
    ref = _subscribed(english, receiver)
    attempts: list[bool] = []
    read = repository.subscription_by_ref

    def read_then_another_writer(*args: Any, **kwargs: Any) -> Subscription | None:
        found = read(*args, **kwargs)
        attempts.append(another_writer_commits(english))
        return found

    monkeypatch.setattr(repository, "subscription_by_ref", read_then_another_writer)

    renewed = runner.invoke(app, ["exchange", "webhooks", "renew", ref])

    assert renewed.exit_code == 0, renewed.output
    # The checks before the challenge only read; the read after the renewal's write meets
    # the lock it holds.
    assert attempts[-1] is False and True in attempts[:-1]
    assert _stored(english, ref)[0] == "active"
