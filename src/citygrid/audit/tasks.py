"""Background work of the access log: the sequencer, which also signs checkpoints.

Every second it gives new entries their tree positions and, if the tree grew, signs a new
checkpoint. Several may run at once (embedded in each app process, or ``citygrid worker``s):
``service.sequence`` takes the sequencer lock first (an advisory lock on PostgreSQL, the write
lock on SQLite), so they take turns and never give out a position twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from citygrid.audit import service as audit
from citygrid.audit.signing import SigningKey, load_signing_key
from citygrid.kit.settings import Settings
from citygrid.kit.worker import PeriodicTask

CHECKPOINT_TASK = "audit.checkpoint"
CHECKPOINT_INTERVAL = 1.0  # seconds
# A tick looks only at recent entries (cheap at any size of log); a full search, this often,
# catches an entry whose transaction lasted longer than ``audit.STRAY_GRACE``.
FULL_SEARCH_INTERVAL = 300.0  # seconds


@dataclass
class Checkpointer:
    """One tick of the sequencer: sequence new entries, sign a checkpoint if the tree grew."""

    key: SigningKey
    origin: str
    full_search_interval: float = FULL_SEARCH_INTERVAL
    _last_full_search: float | None = field(default=None, init=False)

    def __call__(self, session: Session) -> int:
        """Returns the new checkpoint's tree size, 0 when the tree did not grow."""
        now = time.monotonic()
        full = (
            self._last_full_search is None
            or now - self._last_full_search >= self.full_search_interval
        )
        made = audit.checkpoint(session, self.key, origin=self.origin, recent_only=not full)
        if full:
            self._last_full_search = now
        return made.tree_size if made is not None else 0


def periodic_tasks(settings: Settings) -> list[PeriodicTask]:
    """The access log's tasks; fails at once when no signing key is configured."""
    checkpointer = Checkpointer(load_signing_key(settings), settings.audit_log_origin)
    return [PeriodicTask(CHECKPOINT_TASK, CHECKPOINT_INTERVAL, checkpointer)]
