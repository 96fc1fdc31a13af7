"""The webhook sender, a task of the kit worker (embedded in ``citygrid serve``, alone as
``citygrid worker``; several may run at once: claims use ``FOR UPDATE SKIP LOCKED``).

A run claims a batch of due deliveries, POSTs them concurrently and records the outcomes;
the worker runs again at once while a run found work. The ``Sender`` (keep-alive connections
per callback origin, a thread pool) lives as long as the task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from citygrid.exchange.tasks import worker_id
from citygrid.exchange.webhooks import delivery
from citygrid.kit.db import get_session_factory
from citygrid.kit.settings import Settings
from citygrid.kit.worker import PeriodicTask

WEBHOOKS_TASK = "exchange.webhooks"
WEBHOOKS_INTERVAL = 0.2  # seconds between an idle run and the next


@dataclass
class WebhookSending:
    """One run of the sender; it opens its own transactions (claim, then record)."""

    settings: Settings
    batch: int = delivery.DEFAULT_BATCH
    _sender: delivery.Sender | None = field(default=None, init=False, repr=False)

    def __call__(self, _session: Session) -> int:
        """Send a batch; how many deliveries it claimed (0: nothing was due)."""
        if self._sender is None:
            self._sender = delivery.Sender(self.settings)
        report = delivery.run_once(
            get_session_factory(self.settings.database_url),
            self._sender,
            worker_id=worker_id(),
            batch=self.batch,
        )
        return report.claimed


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """The webhooks' task: sending."""
    return [PeriodicTask(WEBHOOKS_TASK, WEBHOOKS_INTERVAL, WebhookSending(settings), drain=True)]
