"""How long the exchange keeps the records of its deliveries, and the purge that deletes
them after that (docs/exchange.md, "Retention").

Deleted, each with its children:

- outbox entries delivered more than ``CITYGRID_OUTBOX_RETENTION_DAYS`` (30) ago, with their
  consumers' delivery records (``outbox_deliveries``); an entry that webhook deliveries
  still point at stays until the last of them goes;
- webhook deliveries delivered more than ``CITYGRID_WEBHOOK_RETENTION_DAYS`` (90) ago, with
  their attempts (the delivery log);
- dead outbox entries and dead webhook deliveries last tried more than
  ``CITYGRID_DEAD_LETTER_RETENTION_DAYS`` (180) ago. A replayed delivery is pending again:
  it is kept, and counts from its new delivery.

Never deleted: pending and claimed rows (waiting, or in flight), and everything the
exchange answers from later: the life events (``exchange_events``, from which a publish
sent again gets its first answer, and which the scoreboard counts), publications, tasks,
subscriptions, and the access log.

The tables are walked by id, oldest first, in windows of ``batch`` rows, one short
transaction per window: no transaction holds more than a window, whatever the backlog. Ids
grow with time, so the walk stops after the first window holding a row created after the
limits. Webhook deliveries go first, so the outbox entries they held go in the same run. On
SQLite each window's transaction takes the writer lock at its start (its reads and deletes
see one state); on PostgreSQL the rows to delete are locked with ``FOR UPDATE SKIP LOCKED``:
a row another transaction holds (a replay, a sender) is left for the next run. A dry run
walks the same windows and counts what a purge would delete, changing nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.orm import Session

from citygrid.exchange import repository
from citygrid.exchange.webhooks import repository as webhooks_repository
from citygrid.kit.db import SQLITE_BEGIN
from citygrid.kit.models import utcnow
from citygrid.kit.queue import Window
from citygrid.kit.settings import Settings

logger = logging.getLogger("citygrid.exchange.retention")

SessionFactory = Callable[[], Session]
WindowReader = Callable[..., Window | None]

DEFAULT_BATCH = 1000


@dataclass(frozen=True, slots=True)
class Retention:
    """How long finished rows are kept: delivered outbox entries, delivered webhook
    deliveries, and dead ones of both."""

    outbox: timedelta = timedelta(days=30)
    webhooks: timedelta = timedelta(days=90)
    dead: timedelta = timedelta(days=180)

    @classmethod
    def from_settings(cls, settings: Settings) -> Retention:
        """The retention the settings name (``CITYGRID_*_RETENTION_DAYS``)."""
        return cls(
            outbox=timedelta(days=settings.outbox_retention_days),
            webhooks=timedelta(days=settings.webhook_retention_days),
            dead=timedelta(days=settings.dead_letter_retention_days),
        )


@dataclass
class PurgeReport:
    """What a purge deleted (or, dry, would delete)."""

    dry_run: bool = False
    outbox_entries: int = 0
    consumer_records: int = 0
    webhook_deliveries: int = 0
    webhook_attempts: int = 0
    transactions: int = 0

    @property
    def rows(self) -> int:
        """Every row deleted (or to delete)."""
        return (
            self.outbox_entries
            + self.consumer_records
            + self.webhook_deliveries
            + self.webhook_attempts
        )


@dataclass(frozen=True, slots=True)
class _Limits:
    """The moments before which finished rows go."""

    outbox_delivered: datetime
    webhooks_delivered: datetime
    dead: datetime


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def purge(
    session_factory: SessionFactory,
    *,
    retention: Retention | None = None,
    now: datetime | None = None,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
) -> PurgeReport:
    """Delete the finished rows older than the retention, a window of ``batch`` rows per
    transaction (see the module's docstring); with ``dry_run``, count them instead."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    retention = retention or Retention()
    moment = _utc(now or utcnow())
    limits = _Limits(
        outbox_delivered=moment - retention.outbox,
        webhooks_delivered=moment - retention.webhooks,
        dead=moment - retention.dead,
    )
    report = PurgeReport(dry_run=dry_run)

    def deliveries(session: Session, window: Window) -> None:
        ids = webhooks_repository.finished_delivery_ids(
            session,
            window=window,
            delivered_before=limits.webhooks_delivered,
            dead_before=limits.dead,
            lock=not dry_run,
        )
        if dry_run:
            report.webhook_attempts += webhooks_repository.count_attempts(session, delivery_ids=ids)
            report.webhook_deliveries += len(ids)
        else:
            attempts, deleted = webhooks_repository.delete_deliveries(session, delivery_ids=ids)
            report.webhook_attempts += attempts
            report.webhook_deliveries += deleted

    def held(entry_id: ColumnElement[Any]) -> ColumnElement[bool]:
        # A dry run deleted no delivery: an entry counts as free when the deliveries holding
        # it are ones the purge would delete first.
        unless = (limits.webhooks_delivered, limits.dead) if dry_run else None
        return webhooks_repository.entry_has_deliveries(entry_id, unless_finished=unless)

    def entries(session: Session, window: Window) -> None:
        ids = repository.finished_outbox_ids(
            session,
            window=window,
            delivered_before=limits.outbox_delivered,
            dead_before=limits.dead,
            kept=held,
            lock=not dry_run,
        )
        if dry_run:
            report.consumer_records += repository.count_consumer_records(session, entry_ids=ids)
            report.outbox_entries += len(ids)
        else:
            records, deleted = repository.delete_outbox_entries(session, entry_ids=ids)
            report.consumer_records += records
            report.outbox_entries += deleted

    newest_deliveries = max(limits.webhooks_delivered, limits.dead)
    newest_entries = max(limits.outbox_delivered, limits.dead)
    for reader, newest, step in (
        (webhooks_repository.delivery_window, newest_deliveries, deliveries),
        (repository.outbox_window, newest_entries, entries),
    ):
        _walk(
            session_factory,
            reader,
            newest=newest,
            batch=batch,
            dry_run=dry_run,
            step=step,
            report=report,
        )
    if report.rows and not dry_run:
        logger.info(
            "purged %d outbox entries (%d consumer records), %d webhook deliveries "
            "(%d attempts) in %d transactions",
            report.outbox_entries,
            report.consumer_records,
            report.webhook_deliveries,
            report.webhook_attempts,
            report.transactions,
        )
    return report


def _walk(
    session_factory: SessionFactory,
    reader: WindowReader,
    *,
    newest: datetime,
    batch: int,
    dry_run: bool,
    step: Callable[[Session, Window], None],
    report: PurgeReport,
) -> None:
    """Apply ``step`` to each window of a table, one transaction each, until a window holds
    a row created at or after ``newest`` (a purgeable row is older) or the table ends."""
    after = 0
    while True:
        with session_factory() as session, session.begin():
            if not dry_run and session.get_bind().dialect.name == "sqlite":
                session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
            window = reader(session, after=after, size=batch)
            if window is None:
                return
            step(session, window)
        report.transactions += 1
        if window.rows < batch or window.newest >= newest:
            return
        after = window.last
