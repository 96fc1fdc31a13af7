"""``citygrid exchange webhooks ...`` as an operator types it, on a real SQLite file:
list the subscriptions, read a delivery log, replay the dead, send what is due."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from citygrid.cli import app
from citygrid.exchange import outbox
from citygrid.exchange import service as exchange
from citygrid.kit.db import get_session_factory, unit_of_work
from citygrid.kit.settings import Settings
from tests.exchange.conftest import cli_database
from tests.exchange.story import PUBLIC_SECURITY, event, family
from tests.exchange.webhooks.conftest import subscribe_through_service
from tests.exchange.webhooks.receiver import Receiver

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
