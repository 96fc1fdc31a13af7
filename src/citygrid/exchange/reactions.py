"""The internal reactions ("tell us once"): consumers of the outbox that apply a life event
to the data of the departments that need it, create the tasks it calls for, and log who was
told and why.

Each reaction runs in the transaction of its delivery record (see ``outbox.py``), so it is
applied once even when its entry is delivered twice; each is also idempotent on its own (it
changes only rows still in the state it expects; a task is unique per event, kind and
assignee in the database). Each writes an audit entry (action ``told``, the department or
grid told as the actor, purpose ``life-event-notification``, statutory) when it changed
something, so that the access log shows the resident which departments were told of what,
and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from citygrid.audit import service as audit
from citygrid.cases.calendar import add_working_time
from citygrid.exchange import repository
from citygrid.exchange.models import (
    AllowanceStatus,
    AssigneeKind,
    PensionStatus,
    TenancyStatus,
)
from citygrid.exchange.outbox import ConsumerRegistry, Message
from citygrid.kit.errors import NotFound
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow
from citygrid.registry import service as registry

REGISTRY = ConsumerRegistry()
"""The internal reactions, each a consumer of the outbox."""

NOTIFY_PURPOSE = "life-event-notification"
"""The purpose written in the "told" audit entries (legal basis: statutory)."""

TOLD = "told"

# Working days a task may take.
ALLOWANCE_REVIEW_DAYS = 5
HOUSEHOLD_HEAD_DAYS = 10
VERIFICATION_DAYS = 3


class _Effects:
    """What a reaction does to a batch of messages: the tasks it creates and the tellings it
    logs, in the order of the messages, each written at the end in one executemany."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.now = utcnow()
        self.tasks: list[dict[str, Any]] = []
        self.told: list[audit.AccessRecord] = []
        self._due: dict[int, datetime] = {}

    def task(
        self,
        message: Message,
        person: registry.PersonKey,
        *,
        kind: str,
        assignee_kind: AssigneeKind,
        assignee: str,
        grid_code: str,
        working_days: int,
    ) -> None:
        """Create a task of the event for an assignee. The delivery record makes a reaction
        run once; the unique key (event, kind, assignee) guards the same in the database."""
        due_at = self._due.get(working_days)
        if due_at is None:
            due_at = self._due[working_days] = add_working_time(self.now, days=working_days)
        self.tasks.append(
            {
                "assignee_kind": assignee_kind,
                "assignee": assignee,
                "grid_code": grid_code,
                "kind": kind,
                "subject_person_id": person.id,
                "subject_ref": person.ref,
                "due_at": due_at,
                "created_by_event_id": _event_id(message),
                "created_at": self.now,
                "state": "open",
            }
        )

    def tell(
        self,
        message: Message,
        person: registry.PersonKey,
        *,
        fields: Sequence[str],
        effect: str,
        department: str | None = None,
        grid_code: str | None = None,
    ) -> None:
        """Log that a department (or a grid's worker) was told of an event about the
        person."""
        self.told.append(
            audit.AccessRecord(
                actor=f"exchange:{self.consumer}",
                role="department_officer" if department else "grid_worker",
                department=department,
                scope=(grid_code,) if grid_code else (),
                purpose=NOTIFY_PURPOSE,
                action=TOLD,
                outcome=audit.ALLOWED,
                subjects=(person.ref,),
                fields=tuple(fields),
                detail={
                    "event": message.payload.get("type"),
                    "event_id": _event_id(message),
                    "outbox_entry": message.entry_id,
                    "effect": effect,
                    "legal_basis": "statutory",
                },
            )
        )

    def write(self, session: Session) -> None:
        """Insert the tasks, then append the tellings (no id to read back: the lean INSERT
        without RETURNING)."""
        if self.tasks:
            repository.insert_tasks(session, self.tasks)
        if self.told:
            audit.append_many(session, self.told)


def _persons(
    session: Session, messages: Sequence[Message]
) -> list[tuple[Message, registry.PersonKey]]:
    """Each message with the keys of the person it is about (one query for all: a row read,
    no ORM object; a reaction needs the id, reference and grid only). NotFound when one of
    them is missing."""
    wanted = [message.subject_person_id for message in messages]
    keys = registry.person_keys_by_ids(
        session, person_ids=[person_id for person_id in wanted if person_id is not None]
    )
    found: list[tuple[Message, registry.PersonKey]] = []
    for message, person_id in zip(messages, wanted, strict=True):
        person = keys.get(person_id) if person_id is not None else None
        if person is None:
            raise NotFound(_("Not found."))
        found.append((message, person))
    return found


def _event_id(message: Message) -> int:
    return int(message.payload["event_id"])


def _died_on(message: Message) -> date:
    return date.fromisoformat(str(message.payload["died_on"]))


# ============================================================================ death
#
# Each reaction takes a batch of messages (at most one per person) and reads the rows of all
# their persons at once; given one message it is the reaction to that message alone.


@REGISTRY.batch_consumer(
    "civil-affairs.allowance",
    topics=["life_event.death"],
    description="An active subsistence allowance is suspended pending review; civil affairs "
    "gets a review task.",
)
def suspend_allowance(session: Session, messages: Sequence[Message]) -> None:
    """Suspend the deceased's active allowance and ask civil affairs to review it."""
    consumer = "civil-affairs.allowance"
    persons = _persons(session, messages)
    allowances = repository.allowances_of(session, person_ids=[p.id for _m, p in persons])
    effects = _Effects(consumer)
    for message, person in persons:
        allowance = allowances.get(person.id)
        if allowance is None or allowance.status is not AllowanceStatus.ACTIVE:
            continue
        allowance.status = AllowanceStatus.SUSPENDED
        allowance.changed_by = f"exchange:{consumer}"
        effects.task(
            message,
            person,
            kind="allowance_review",
            assignee_kind=AssigneeKind.DEPARTMENT,
            assignee="civil-affairs",
            grid_code=person.grid_code,
            working_days=ALLOWANCE_REVIEW_DAYS,
        )
        effects.tell(
            message,
            person,
            department="civil-affairs",
            fields=("allowance",),
            effect="allowance suspended pending review",
        )
    session.flush()
    effects.write(session)


@REGISTRY.batch_consumer(
    "social-security.pension",
    topics=["life_event.death"],
    description="An active pension is stopped.",
)
def stop_pension(session: Session, messages: Sequence[Message]) -> None:
    """Stop the deceased's active pension."""
    consumer = "social-security.pension"
    persons = _persons(session, messages)
    pensions = repository.pensions_of(session, person_ids=[p.id for _m, p in persons])
    effects = _Effects(consumer)
    for message, person in persons:
        pension = pensions.get(person.id)
        if pension is None or pension.status is not PensionStatus.ACTIVE:
            continue
        pension.status = PensionStatus.STOPPED
        pension.changed_by = f"exchange:{consumer}"
        effects.tell(
            message,
            person,
            department="social-security",
            fields=("pension",),
            effect="pension stopped",
        )
    session.flush()
    effects.write(session)


@REGISTRY.batch_consumer(
    "rental-housing.tenancy",
    topics=["life_event.death"],
    description="Active tenancies end on the day of death.",
)
def end_tenancies(session: Session, messages: Sequence[Message]) -> None:
    """End the deceased's active tenancies on the day of death."""
    consumer = "rental-housing.tenancy"
    persons = _persons(session, messages)
    active = repository.active_tenancies_of(session, person_ids=[p.id for _m, p in persons])
    effects = _Effects(consumer)
    for message, person in persons:
        tenancies = [
            tenancy
            for tenancy in active.get(person.id, ())
            if tenancy.status is TenancyStatus.ACTIVE
        ]
        if not tenancies:
            continue
        died_on = _died_on(message)
        for tenancy in tenancies:
            tenancy.until = max(died_on, tenancy.since)
            tenancy.status = TenancyStatus.ENDED
            tenancy.changed_by = f"exchange:{consumer}"
        effects.tell(
            message,
            person,
            department="rental-housing",
            fields=("tenancy",),
            effect=f"{len(tenancies)} tenancies ended",
        )
    session.flush()
    effects.write(session)


def _left_household(message: Message) -> int | None:
    """The household a head left (None: the person was not its head)."""
    if not message.payload.get("was_head"):
        return None
    household_id = message.payload.get("household_id") or message.payload.get("left_household_id")
    return None if household_id is None else int(household_id)


@REGISTRY.batch_consumer(
    "registry.household",
    topics=["life_event.death", "life_event.move_in"],
    description="A household whose head died or moved away needs a new head: a task for the "
    "grid worker of the household's grid (the new head is never guessed).",
)
def household_needs_head(session: Session, messages: Sequence[Message]) -> None:
    """Ask the household's grid worker to record a new head when the head left it."""
    left = [
        (message, household)
        for message in messages
        if (household := _left_household(message)) is not None
    ]
    if not left:
        return
    consumer = "registry.household"
    persons = _persons(session, [message for message, _household in left])
    grids = registry.household_grid_codes(
        session, household_ids=[household for _message, household in left]
    )
    effects = _Effects(consumer)
    for (message, person), (_message, household_id) in zip(persons, left, strict=True):
        grid_code = grids.get(household_id)
        if grid_code is None:
            raise NotFound(_("Not found."))
        effects.task(
            message,
            person,
            kind="household_head_needed",
            assignee_kind=AssigneeKind.GRID,
            assignee=grid_code,
            grid_code=grid_code,
            working_days=HOUSEHOLD_HEAD_DAYS,
        )
        effects.tell(
            message,
            person,
            grid_code=grid_code,
            fields=("household_registration",),
            effect="household needs a new head",
        )
    effects.write(session)


# ============================================================================ grid workers

_VERIFICATION_KIND = {
    "life_event.birth": "verify_birth",
    "life_event.death": "verify_death",
    "life_event.move_in": "verify_move_in",
    "life_event.move_out": "verify_move_out",
}


def _grids(message: Message, person: registry.PersonKey) -> list[str]:
    grid_codes: Any = message.payload.get("grid_codes")
    if grid_codes:
        return sorted({str(code) for code in grid_codes})
    return [person.grid_code]


@REGISTRY.batch_consumer(
    "grid.verification",
    topics=list(_VERIFICATION_KIND),
    description="The grid worker of each grid concerned verifies on the ground (a birth or a "
    "death: the person's grid; a move: the grids moved from and to).",
)
def grid_verification(session: Session, messages: Sequence[Message]) -> None:
    """Give the worker of each grid concerned a verification task."""
    effects = _Effects("grid.verification")
    for message, person in _persons(session, messages):
        kind = _VERIFICATION_KIND[message.topic]
        for grid_code in _grids(message, person):
            effects.task(
                message,
                person,
                kind=kind,
                assignee_kind=AssigneeKind.GRID,
                assignee=grid_code,
                grid_code=grid_code,
                working_days=VERIFICATION_DAYS,
            )
            effects.tell(
                message,
                person,
                grid_code=grid_code,
                fields=("identity",),
                effect=kind.replace("_", " "),
            )
    effects.write(session)


def consumers_of(topic: str) -> list[str]:
    """The names of the reactions to a topic (for docs and the CLI)."""
    return [consumer.name for consumer in REGISTRY.for_topic(topic)]


# Subscribed department systems: one more consumer fans each entry out into webhook
# deliveries (sent by the worker task ``exchange.webhooks``; see exchange/webhooks).
from citygrid.exchange.webhooks.service import register_consumer  # noqa: E402

register_consumer(REGISTRY)
