"""Task lists people can see: the tasks the reactions created, for the grid worker of a grid
(verify a death, a birth, a move; a household needs a new head) and for a department (civil
affairs reviews a suspended allowance), with a "done" action.

Who sees which tasks:

- a **grid worker** the tasks assigned to her grids (the 15-digit codes among her scopes);
- a **department officer** (or a department's API client) the tasks of the department whose
  subject's grid lies in the caller's territorial scope;
- a **community, street or district official** the grid tasks of the grids in the territory
  (to follow them; only the grid worker marks them done).

A task names its subject by opaque reference only. The subject's identity is read through the
access gateway (``gateway.persons_by_refs``) for the purpose ``life-event-notification``
(statutory: the caller was told of the event to act on it): masked by the caller's policy,
scope-filtered (a resident who moved out of the caller's territory is not shown), and
logged as one access-log entry per list.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.exchange import repository
from citygrid.exchange.models import AssigneeKind, Task, TaskState
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow

TASK_PURPOSE = "life-event-notification"
"""The purpose under which a task's subject is shown."""

SUBJECT_FIELDS = ("name", "sex", "birth_date", "status")
"""What a task list shows of its subject (each at the caller's level: masked or hidden)."""

MAX_TASKS = 200

_OFFICIALS = frozenset({"community_official", "street_official", "district_official"})


class TaskFilter(enum.StrEnum):
    """Which tasks a list holds."""

    OPEN = "open"
    DONE = "done"


class TaskItem(BaseModel):
    """A task as its assignee sees it; ``person`` is the subject as the caller's policy shows
    it (masked), or null when the subject is outside the caller's scope or not shown to the
    caller's role."""

    id: int
    kind: str
    assignee_kind: str
    assignee: str
    grid_code: str
    subject: str | None = Field(description="The subject's opaque reference")
    person: dict[str, Any] | None = None
    due_at: datetime
    overdue: bool
    state: str
    created_at: datetime
    created_by_event_id: int | None
    done_at: datetime | None = None
    done_by: str | None = None
    can_complete: bool = False


class TaskList(BaseModel):
    """A page of tasks, the most urgent first (done ones: the latest first)."""

    items: list[TaskItem]
    state: TaskFilter
    purpose: str | None = Field(description="The purpose the subjects were read for")
    masked: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class _Assignment:
    """The tasks an actor sees: of which kind, whose (None: any in scope), and in which
    territory; and whether the actor may mark them done."""

    kind: AssigneeKind
    assignees: tuple[str, ...] | None
    scopes: tuple[str, ...]
    completes: bool


def _scopes(actor: Actor) -> tuple[str, ...]:
    return tuple(prefix for prefix in actor.scopes if prefix.isascii() and prefix.isdigit())


def _assignment(actor: Actor) -> _Assignment:
    """What the actor's task list holds; 403 for a role without tasks."""
    scopes = _scopes(actor)
    if actor.department:
        return _Assignment(AssigneeKind.DEPARTMENT, (actor.department,), scopes, True)
    if actor.role == "grid_worker":
        grids = tuple(code for code in scopes if len(code) == 15)
        return _Assignment(AssigneeKind.GRID, grids, scopes, True)
    if actor.role in _OFFICIALS:
        return _Assignment(AssigneeKind.GRID, None, scopes, False)
    raise Forbidden(_("Your role has no task list."))


def _may_complete(assignment: _Assignment, task: Task) -> bool:
    return (
        assignment.completes
        and task.state is TaskState.OPEN
        and (assignment.assignees is None or task.assignee in assignment.assignees)
    )


def _item(task: Task, assignment: _Assignment, person: dict[str, Any] | None) -> TaskItem:
    now = utcnow()
    due_at = task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=now.tzinfo)
    return TaskItem(
        id=task.id,
        kind=task.kind,
        assignee_kind=str(task.assignee_kind),
        assignee=task.assignee,
        grid_code=task.grid_code,
        subject=task.subject_ref,
        person=person,
        due_at=task.due_at,
        overdue=task.state is TaskState.OPEN and due_at < now,
        state=str(task.state),
        created_at=task.created_at,
        created_by_event_id=task.created_by_event_id,
        done_at=task.done_at,
        done_by=task.done_by,
        can_complete=_may_complete(assignment, task),
    )


def list_tasks(
    session: Session,
    actor: Actor,
    *,
    state: TaskFilter = TaskFilter.OPEN,
    limit: int = 50,
    offset: int = 0,
) -> TaskList:
    """The caller's tasks (see the module's docstring), with their subjects read through the
    access gateway (masked, scoped, one audit entry)."""
    if not 1 <= limit <= MAX_TASKS:
        raise ValidationFailed.one("limit", _("must be between 1 and %(max)d") % {"max": MAX_TASKS})
    if offset < 0:
        raise ValidationFailed.one("offset", _("must be zero or more"))
    assignment = _assignment(actor)
    tasks = repository.task_page(
        session,
        assignee_kind=assignment.kind,
        assignees=assignment.assignees,
        scopes=assignment.scopes,
        state=TaskState(state.value),
        limit=limit,
        offset=offset,
    )
    refs = [task.subject_ref for task in tasks if task.subject_ref]
    people: dict[str, dict[str, Any]] = {}
    purpose: str | None = None
    masked: list[str] = []
    allowed = {purpose.code for purpose in gateway.allowed_purposes(actor)}
    if refs and TASK_PURPOSE in allowed:
        page = gateway.persons_by_refs(
            session, actor, purpose=TASK_PURPOSE, refs=refs, fields=SUBJECT_FIELDS
        )
        people = {item["ref"]: item for item in page.items}
        purpose, masked = page.purpose, list(page.masked)
    items = [_item(task, assignment, people.get(task.subject_ref or "")) for task in tasks]
    return TaskList(items=items, state=state, purpose=purpose, masked=masked)


def complete_task(session: Session, actor: Actor, *, task_id: int) -> TaskItem:
    """Mark one of the caller's open tasks done: 404 for a task the caller does not see, 403
    for one the caller only follows (an official), 409 when it is already done."""
    assignment = _assignment(actor)
    task = repository.visible_task(
        session,
        task_id=task_id,
        assignee_kind=assignment.kind,
        assignees=assignment.assignees,
        scopes=assignment.scopes,
    )
    if task is None:
        raise NotFound(_("No such task."))
    if task.state is TaskState.DONE:
        raise Conflict(
            _("This task is already done."),
            details=[{"field": "task_id", "reason": _("already done")}],
        )
    if not _may_complete(assignment, task):
        raise Forbidden(_("Only the task's assignee may mark it done."))
    task.state = TaskState.DONE
    task.done_at = utcnow()
    task.done_by = actor.name
    session.flush()
    return _item(task, assignment, None)


def task_kind_labels() -> dict[str, str]:
    """Every task kind's label in the current locale."""
    return {
        "verify_death": _("Verify a death"),
        "verify_birth": _("Verify a birth"),
        "verify_move_in": _("Verify a move in"),
        "verify_move_out": _("Verify a move out"),
        "household_head_needed": _("Record a new head of household"),
        "allowance_review": _("Review a suspended subsistence allowance"),
    }
