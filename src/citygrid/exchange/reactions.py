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
from datetime import date
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


def _person(session: Session, message: Message) -> registry.PersonKey:
    """The keys of the person the entry is about (a row read, no ORM object: a reaction needs
    the id, reference and grid only)."""
    assert message.subject_person_id is not None  # noqa: S101 - life events name a person
    return registry.person_key(session, person_id=message.subject_person_id)


def _event_id(message: Message) -> int:
    return int(message.payload["event_id"])


def _tell(
    session: Session,
    message: Message,
    person: registry.PersonKey,
    *,
    consumer: str,
    fields: Sequence[str],
    effect: str,
    department: str | None = None,
    grid_code: str | None = None,
) -> None:
    """Log that a department (or a grid's worker) was told of an event about the person."""
    # append_many: no id to read back, so the lean INSERT without RETURNING.
    audit.append_many(
        session,
        [
            audit.AccessRecord(
                actor=f"exchange:{consumer}",
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
        ],
    )


def _task(
    session: Session,
    message: Message,
    person: registry.PersonKey,
    *,
    kind: str,
    assignee_kind: AssigneeKind,
    assignee: str,
    grid_code: str,
    working_days: int,
) -> None:
    """Create a task of the event for an assignee. The delivery record makes a reaction run
    once; the unique key (event, kind, assignee) guards the same in the database."""
    now = utcnow()
    repository.insert_task(
        session,
        {
            "assignee_kind": assignee_kind,
            "assignee": assignee,
            "grid_code": grid_code,
            "kind": kind,
            "subject_person_id": person.id,
            "subject_ref": person.ref,
            "due_at": add_working_time(now, days=working_days),
            "created_by_event_id": _event_id(message),
            "created_at": now,
            "state": "open",
        },
    )


def _died_on(message: Message) -> date:
    return date.fromisoformat(str(message.payload["died_on"]))


# ============================================================================ death


@REGISTRY.consumer(
    "civil-affairs.allowance",
    topics=["life_event.death"],
    description="An active subsistence allowance is suspended pending review; civil affairs "
    "gets a review task.",
)
def suspend_allowance(session: Session, message: Message) -> None:
    """Suspend the deceased's active allowance and ask civil affairs to review it."""
    person = _person(session, message)
    allowance = repository.allowance_of(session, person_id=person.id)
    if allowance is None or allowance.status is not AllowanceStatus.ACTIVE:
        return
    allowance.status = AllowanceStatus.SUSPENDED
    allowance.changed_by = "exchange:civil-affairs.allowance"
    session.flush()
    _task(
        session,
        message,
        person,
        kind="allowance_review",
        assignee_kind=AssigneeKind.DEPARTMENT,
        assignee="civil-affairs",
        grid_code=person.grid_code,
        working_days=ALLOWANCE_REVIEW_DAYS,
    )
    _tell(
        session,
        message,
        person,
        consumer="civil-affairs.allowance",
        department="civil-affairs",
        fields=("allowance",),
        effect="allowance suspended pending review",
    )


@REGISTRY.consumer(
    "social-security.pension",
    topics=["life_event.death"],
    description="An active pension is stopped.",
)
def stop_pension(session: Session, message: Message) -> None:
    """Stop the deceased's active pension."""
    person = _person(session, message)
    pension = repository.pension_of(session, person_id=person.id)
    if pension is None or pension.status is not PensionStatus.ACTIVE:
        return
    pension.status = PensionStatus.STOPPED
    pension.changed_by = "exchange:social-security.pension"
    session.flush()
    _tell(
        session,
        message,
        person,
        consumer="social-security.pension",
        department="social-security",
        fields=("pension",),
        effect="pension stopped",
    )


@REGISTRY.consumer(
    "rental-housing.tenancy",
    topics=["life_event.death"],
    description="Active tenancies end on the day of death.",
)
def end_tenancies(session: Session, message: Message) -> None:
    """End the deceased's active tenancies on the day of death."""
    person = _person(session, message)
    tenancies = repository.active_tenancies(session, person_id=person.id)
    if not tenancies:
        return
    died_on = _died_on(message)
    for tenancy in tenancies:
        tenancy.until = max(died_on, tenancy.since)
        tenancy.status = TenancyStatus.ENDED
        tenancy.changed_by = "exchange:rental-housing.tenancy"
    session.flush()
    _tell(
        session,
        message,
        person,
        consumer="rental-housing.tenancy",
        department="rental-housing",
        fields=("tenancy",),
        effect=f"{len(tenancies)} tenancies ended",
    )


@REGISTRY.consumer(
    "registry.household",
    topics=["life_event.death", "life_event.move_in"],
    description="A household whose head died or moved away needs a new head: a task for the "
    "grid worker of the household's grid (the new head is never guessed).",
)
def household_needs_head(session: Session, message: Message) -> None:
    """Ask the household's grid worker to record a new head when the head left it."""
    if not message.payload.get("was_head"):
        return
    household_id = message.payload.get("household_id") or message.payload.get("left_household_id")
    if household_id is None:
        return
    person = _person(session, message)
    household = registry.get_household(session, household_id=int(household_id))
    _task(
        session,
        message,
        person,
        kind="household_head_needed",
        assignee_kind=AssigneeKind.GRID,
        assignee=household.grid_code,
        grid_code=household.grid_code,
        working_days=HOUSEHOLD_HEAD_DAYS,
    )
    _tell(
        session,
        message,
        person,
        consumer="registry.household",
        grid_code=household.grid_code,
        fields=("household_registration",),
        effect="household needs a new head",
    )


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


@REGISTRY.consumer(
    "grid.verification",
    topics=list(_VERIFICATION_KIND),
    description="The grid worker of each grid concerned verifies on the ground (a birth or a "
    "death: the person's grid; a move: the grids moved from and to).",
)
def grid_verification(session: Session, message: Message) -> None:
    """Give the worker of each grid concerned a verification task."""
    person = _person(session, message)
    kind = _VERIFICATION_KIND[message.topic]
    for grid_code in _grids(message, person):
        _task(
            session,
            message,
            person,
            kind=kind,
            assignee_kind=AssigneeKind.GRID,
            assignee=grid_code,
            grid_code=grid_code,
            working_days=VERIFICATION_DAYS,
        )
        _tell(
            session,
            message,
            person,
            consumer="grid.verification",
            grid_code=grid_code,
            fields=("identity",),
            effect=kind.replace("_", " "),
        )


def consumers_of(topic: str) -> list[str]:
    """The names of the reactions to a topic (for docs and the CLI)."""
    return [consumer.name for consumer in REGISTRY.for_topic(topic)]


# Subscribed department systems: one more consumer fans each entry out into webhook
# deliveries (sent by the worker task ``exchange.webhooks``; see exchange/webhooks).
from citygrid.exchange.webhooks.service import register_consumer  # noqa: E402

register_consumer(REGISTRY)
