"""Background work of the cases domain: escalating overdue cases.

``periodic_tasks`` hands the kit's worker (``citygrid.kit.worker``) one task,
``cases.escalate_overdue``: every ``ESCALATION_INTERVAL`` seconds it escalates a batch of
overdue cases in one unit of work, and drains (runs again at once) while batches come back
full. Each case is escalated once: ``cases.escalated_at`` is set in the transaction of the
escalation's transition and event, and on PostgreSQL the batch is claimed with
``FOR UPDATE SKIP LOCKED``, so several workers never escalate a case twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from citygrid.cases import service
from citygrid.kit.db import begin_write
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from citygrid.kit.worker import PeriodicTask

logger = logging.getLogger("citygrid.cases.tasks")

ESCALATION_TASK = "cases.escalate_overdue"
ESCALATION_INTERVAL = 60.0
"""Seconds between escalation sweeps: deadlines are reckoned to the minute."""


def escalate_overdue_cases(session: Session, *, now: datetime | None = None) -> int:
    """Escalate one batch of overdue cases not escalated yet; returns how many."""
    # SQLite: the batch is read, then written; hold the write lock from the read on.
    begin_write(session)
    escalated = service.escalate_overdue(session, now or utcnow())
    if escalated:
        logger.info("escalated %d overdue cases", escalated)
    return escalated


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """The cases domain's tasks for the worker."""
    return [PeriodicTask(ESCALATION_TASK, ESCALATION_INTERVAL, escalate_overdue_cases, drain=True)]
