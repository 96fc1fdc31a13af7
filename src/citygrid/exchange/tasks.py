"""Background work of the exchange, tasks of the kit worker (embedded in ``citygrid serve``,
alone as ``citygrid worker``; several may run at once): the outbox delivery, and the purge of
finished delivery records (``retention.py``) every ``CITYGRID_PURGE_INTERVAL_MINUTES``.

A run claims a batch and delivers it (``outbox.run_once``); the worker drains a backlog by
running again at once while a run found work. An idle run waits up to ``IDLE_WAIT`` seconds
for this process to commit outbox entries, so news published through this process is
delivered at once; entries committed by other processes are found at the next poll.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass

from sqlalchemy.orm import Session

from citygrid.exchange import outbox, retention
from citygrid.kit.db import get_session_factory
from citygrid.kit.settings import Settings
from citygrid.kit.worker import PeriodicTask

OUTBOX_TASK = "exchange.outbox"
OUTBOX_INTERVAL = 0.05  # seconds between an idle run and the next
IDLE_WAIT = 0.25  # seconds an idle run waits to be woken by a commit in this process
OUTBOX_BATCH = 100
PURGE_TASK = "exchange.purge"


def worker_id() -> str:
    """This worker's name in claims and delivery records: host, process and thread."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"[:100]


@dataclass
class OutboxDelivery:
    """One run of the outbox delivery. It opens its own transactions (the claim, then one per
    entry, so that one entry's failure or a crash loses no other's work): the session the
    worker passes is left unused."""

    database_url: str | None
    batch: int = OUTBOX_BATCH
    idle_wait: float = IDLE_WAIT

    def __call__(self, _session: Session) -> int:
        """Deliver a batch; returns how many entries it claimed (0: nothing was due)."""
        factory = get_session_factory(self.database_url)
        report = outbox.run_once(factory, worker_id=worker_id(), batch=self.batch)
        if report.claimed == 0 and outbox.wait_for_work(self.idle_wait):
            report = outbox.run_once(factory, worker_id=worker_id(), batch=self.batch)
        return report.claimed


@dataclass
class Purge:
    """One purge of the finished rows past their retention. It opens its own transactions
    (one per window of rows): the session the worker passes is left unused."""

    settings: Settings

    def __call__(self, _session: Session) -> int:
        """Purge; returns how many rows it deleted."""
        report = retention.purge(
            get_session_factory(self.settings.database_url),
            retention=retention.Retention.from_settings(self.settings),
            batch=self.settings.purge_batch_size,
        )
        return report.rows


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """The exchange's tasks: the outbox delivery, and the purge (unless its interval is 0)."""
    tasks = [
        PeriodicTask(
            OUTBOX_TASK, OUTBOX_INTERVAL, OutboxDelivery(settings.database_url), drain=True
        )
    ]
    if settings.purge_interval_minutes:
        tasks.append(
            PeriodicTask(PURGE_TASK, settings.purge_interval_minutes * 60, Purge(settings))
        )
    return tasks
