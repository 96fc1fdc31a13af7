"""The demo's death story, reproducible: public security registers the death of the seed
grid's resident who receives a subsistence allowance, and within a second civil affairs'
allowance is suspended, the grid worker has a task, and the access log shows which
departments were told, and why (``citygrid demo story death``).

The death is published through the real publish service as public security's system; the
outbox is delivered by the embedded worker (this process runs one while the story waits, and
a running ``citygrid demo`` server delivers too: several workers are safe). What the story
prints it reads back through the services, polling with a deadline; the access-log entries
are read as an in-process audit search, which is itself logged. No name or ID number is
printed: the resident is named by the opaque reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from citygrid.access.persons_api import begin_audited_read
from citygrid.audit import service as audit
from citygrid.demo.feeds import PUBLIC_SECURITY
from citygrid.demo.seed import SEED_GRID_CODE
from citygrid.exchange import service as exchange
from citygrid.exchange.models import AllowanceStatus
from citygrid.exchange.reactions import NOTIFY_PURPOSE, TOLD
from citygrid.kit.actor import Actor
from citygrid.kit.errors import NotFound
from citygrid.kit.i18n import _
from citygrid.registry import service as registry
from citygrid.registry.models import LifeStatus

STORY_SOURCE = "demo-story-death-"
#: The in-process caller that reads the access log back (its search is logged too).
STORY_AUDITOR = Actor(name="demo-story", role="system", kind="system")
POLL_SECONDS = 0.02


@dataclass
class Told:
    """One "told" entry of the access log."""

    entry_id: int
    told: str  # the department, or "grid <code>"
    fields: list[str]
    effect: str
    purpose: str
    legal_basis: str


@dataclass
class DeathStory:
    """What the story saw, and when (seconds after the death was accepted)."""

    subject: str
    event_id: int
    allowance_before: str
    allowance_after: str | None = None
    allowance_amount: str | None = None
    allowance_seconds: float | None = None
    tasks: list[tuple[str, str, datetime]] = field(default_factory=list)  # kind, assignee, due
    tasks_seconds: float | None = None
    told: list[Told] = field(default_factory=list)
    told_seconds: float | None = None

    @property
    def complete(self) -> bool:
        """True when the allowance is suspended, the grid worker has a task, and the
        access log names civil affairs and the grid as told."""
        told = {entry.told for entry in self.told}
        return (
            self.allowance_after == AllowanceStatus.SUSPENDED.value
            and any(kind == "verify_death" for kind, _assignee, _due in self.tasks)
            and "civil-affairs" in told
            and f"grid {SEED_GRID_CODE}" in told
        )

    @property
    def seconds(self) -> float | None:
        """When the last of the three was seen."""
        moments = (self.allowance_seconds, self.tasks_seconds, self.told_seconds)
        return None if None in moments else max(m for m in moments if m is not None)


def story_subject(session: Session) -> int:
    """The seed grid's first living resident with an active allowance; NotFound when there
    is none left (each run of the story takes the next one)."""
    for person_id in exchange.allowance_recipients(session, grid_code=SEED_GRID_CODE):
        if registry.get_person(session, person_id=person_id).status is LifeStatus.ALIVE:
            return person_id
    raise NotFound(_("The seed grid has no living resident with an active allowance left."))


def publish_death(session: Session, person_id: int) -> tuple[str, int]:
    """Public security publishes the death (idempotent per resident); (ref, event id)."""
    person = registry.get_person(session, person_id=person_id)
    outcome = exchange.publish_event(
        session,
        PUBLIC_SECURITY,
        data={
            "type": "death",
            "source_event_id": f"{STORY_SOURCE}{person.ref}",
            "occurred_at": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
            "id_number": person.id_number,
        },
    )
    return person.ref, int(outcome.body["event_id"])


def _told(session: Session, ref: str, event_id: int, since: datetime) -> list[Told]:
    # By purpose and time, not by subject: the subject index is filled when the sequencer
    # places the entries in the tree (about a second later), the entries exist at once.
    page = audit.search_entries(
        session,
        STORY_AUDITOR,
        filters=audit.EntryFilters(purpose=NOTIFY_PURPOSE, since=since),
        limit=audit.MAX_PAGE,
    )
    found = []
    for entry in reversed(page.items):
        detail = entry.detail or {}
        if entry.action != TOLD or ref not in entry.subjects or detail.get("event_id") != event_id:
            continue
        told = entry.department or f"grid {', '.join(entry.scope)}"
        found.append(
            Told(
                entry_id=entry.id,
                told=told,
                fields=entry.fields,
                effect=str(detail.get("effect", "")),
                purpose=entry.purpose or "",
                legal_basis=str(detail.get("legal_basis", "")),
            )
        )
    return found


def run_death_story(
    factory: sessionmaker[Session],
    *,
    deadline: float = 5.0,
    clock: Callable[[], float] = time.perf_counter,
) -> DeathStory:
    """Publish the death, then poll until every reaction is seen or the deadline passes."""
    with factory() as session:
        begin_audited_read(session)  # SQLite: hold the write lock from the first read
        person_id = story_subject(session)
        allowance = exchange.allowance_of(session, person_id=person_id)
        before = allowance.status.value if allowance else "none"
        published_at = datetime.now(UTC) - timedelta(seconds=1)
        ref, event_id = publish_death(session, person_id)
        session.commit()
    started = clock()
    story = DeathStory(subject=ref, event_id=event_id, allowance_before=before)
    while True:
        elapsed = clock() - started
        with factory() as session:
            if story.allowance_seconds is None:
                held = exchange.allowance_of(session, person_id=person_id)
                if held is not None and held.status is not AllowanceStatus.ACTIVE:
                    story.allowance_after = held.status.value
                    story.allowance_amount = f"{held.amount:,.2f}"
                    story.allowance_seconds = elapsed
            if story.tasks_seconds is None:
                tasks = exchange.tasks_about(session, person_id=person_id)
                mine = [task for task in tasks if task.created_by_event_id == event_id]
                if any(task.kind == "verify_death" for task in mine):
                    story.tasks = [(task.kind, task.assignee, task.due_at) for task in mine]
                    story.tasks_seconds = elapsed
        seen = story.allowance_seconds is not None and story.tasks_seconds is not None
        if seen or elapsed > deadline:
            # The "told" entries commit with the reactions: one search of the log (itself
            # logged) finds them, instead of a logged search at every poll.
            with factory() as session:
                begin_audited_read(session)
                story.told = _told(session, ref, event_id, published_at)
                session.commit()
            story.told_seconds = clock() - started
            return story
        time.sleep(POLL_SECONDS)
