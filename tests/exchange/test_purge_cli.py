"""``citygrid exchange purge`` as an operator runs it on a real SQLite file: a dry run first
(nothing changes), then the purge, then again (nothing left)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from typer.testing import CliRunner

from citygrid.cli import app
from citygrid.exchange import outbox
from citygrid.exchange import service as exchange
from citygrid.exchange.models import OutboxDelivery, OutboxEntry
from citygrid.kit.db import get_session_factory, unit_of_work
from citygrid.kit.models import utcnow
from tests.exchange.conftest import cli_database
from tests.exchange.story import PUBLIC_SECURITY, event, family, give_allowance

runner = CliRunner()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A migrated SQLite file with the mini city, as the CLI's database."""
    return cli_database(tmp_path / "purge.sqlite3", monkeypatch, DEFAULT_LOCALE="en")


def _counts(url: str) -> tuple[int, int]:
    with unit_of_work(url) as session:
        return (
            session.execute(select(func.count()).select_from(OutboxEntry)).scalar_one(),
            session.execute(select(func.count()).select_from(OutboxDelivery)).scalar_one(),
        )


def _printed(output: str) -> dict[str, int]:
    rows = [line.split("\t") for line in output.splitlines() if "\t" in line]
    return {label: int(count) for label, count in rows}


def test_an_operator_dry_runs_then_purges_old_delivered_entries(database: str) -> None:
    with unit_of_work(database) as session:
        home = family(session)
        give_allowance(session, home.head)
        exchange.publish_event(session, PUBLIC_SECURITY, data=event("death", home.head))
    outbox.drain(get_session_factory(database), worker_id="reactions")
    # Delivered 40 days ago, but for the one entry last written: still within its 30 days.
    long_ago = utcnow() - timedelta(days=40)
    with unit_of_work(database) as session:
        newest = session.execute(select(func.max(OutboxEntry.id))).scalar_one()
        session.execute(
            update(OutboxEntry)
            .where(OutboxEntry.id < newest)
            .values(created_at=long_ago, delivered_at=long_ago)
        )
    entries, records = _counts(database)
    with unit_of_work(database) as session:
        young_records = session.execute(
            select(func.count())
            .select_from(OutboxDelivery)
            .where(OutboxDelivery.entry_id == newest)
        ).scalar_one()

    dry = runner.invoke(app, ["exchange", "purge", "--dry-run"])

    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("Would delete (dry run, nothing changed):")
    assert _printed(dry.output) == {
        "outbox entries": entries - 1,
        "consumers' delivery records": records - young_records,
        "webhook deliveries": 0,
        "webhook delivery attempts": 0,
    }
    assert _counts(database) == (entries, records)

    done = runner.invoke(app, ["exchange", "purge", "--batch", "1"])

    assert done.exit_code == 0, done.output
    assert done.output.startswith("Deleted:")
    assert _printed(done.output) == _printed(dry.output)
    assert _counts(database) == (1, young_records)
    again = runner.invoke(app, ["exchange", "purge"])
    assert _printed(again.output)["outbox entries"] == 0


def test_purge_refuses_a_bad_batch_and_a_database_without_schema(
    tmp_path: Path, database: str
) -> None:
    bad = runner.invoke(app, ["exchange", "purge", "--batch", "0"])
    empty = runner.invoke(app, ["exchange", "purge", "--db", str(tmp_path / "none.sqlite3")])

    assert bad.exit_code == 2 and "--batch" in bad.output
    assert empty.exit_code == 2
    help_text = runner.invoke(app, ["exchange", "purge", "--help"]).output
    assert "--dry-run" in help_text
