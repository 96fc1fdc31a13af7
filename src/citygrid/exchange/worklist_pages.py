"""Task list pages: the grid worker's ``/my/tasks`` and a department's (or an official's)
``/tasks``, each with a "done" button (a CSRF-checked form). Thin: ``worklist`` does the
work; the subjects are read through the access gateway, and the read is committed (with its
access-log entry) before the page is answered."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.access.deps import CurrentActor
from citygrid.access.persons_api import begin_audited_read, commit_before_answering
from citygrid.access.persons_pages import field_labels, value_labels
from citygrid.exchange import worklist
from citygrid.exchange.worklist import TaskFilter
from citygrid.kit.actor import Actor
from citygrid.kit.clock import CHINA_STANDARD_TIME
from citygrid.kit.db import begin_write
from citygrid.kit.errors import CitygridError
from citygrid.kit.web import SessionDep, render

router = APIRouter(include_in_schema=False)

#: Where the "done" form may send the browser back to.
LIST_PATHS = ("/my/tasks", "/tasks")


def _local_time(moment: datetime) -> str:
    """A time as people in the city read it (China Standard Time)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M")


def _grid_worker(actor: Actor) -> bool:
    return actor.role == "grid_worker" and any(len(code) == 15 for code in actor.scopes)


def _error_page(request: Request, session: Session, error: CitygridError) -> HTMLResponse:
    gateway.record_denial(session, error)
    commit_before_answering(session)
    return render(
        request,
        "error.html",
        status_code=error.status_code,
        error=error.to_dict()["error"],
        status=error.status_code,
        show_message=True,
    )


def _task_page(
    request: Request,
    session: Session,
    actor: Actor,
    *,
    path: str,
    state: TaskFilter,
    done: int | None,
) -> Response:
    begin_audited_read(session)
    try:
        tasks = worklist.list_tasks(session, actor, state=state)
    except CitygridError as error:
        return _error_page(request, session, error)
    context: dict[str, Any] = {
        "tasks": tasks,
        "path": path,
        "state": state.value,
        "done": done,
        "kind_labels": worklist.task_kind_labels(),
        "field_labels": field_labels(),
        "value_labels": value_labels(),
        "mine": path == "/my/tasks",
        "local_time": _local_time,
    }
    response = render(request, "tasks/list.html", **context)
    response.headers["Cache-Control"] = "no-store"
    commit_before_answering(session)
    return response


@router.get("/my/tasks", response_class=HTMLResponse)
def my_tasks(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    state: Annotated[TaskFilter, Query()] = TaskFilter.OPEN,
    done: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """The grid worker's tasks: verifications of her grid's births, deaths and moves."""
    if not _grid_worker(actor):
        return RedirectResponse("/tasks", status_code=303)
    return _task_page(request, session, actor, path="/my/tasks", state=state, done=done)


@router.get("/tasks", response_class=HTMLResponse)
def tasks(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    state: Annotated[TaskFilter, Query()] = TaskFilter.OPEN,
    done: Annotated[int | None, Query(ge=1)] = None,
) -> Response:
    """A department's tasks (e.g. civil affairs' allowance reviews), or an official's grid
    tasks to follow."""
    return _task_page(request, session, actor, path="/tasks", state=state, done=done)


@router.post("/tasks/{task_id}/complete", response_class=HTMLResponse)
def complete(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    task_id: int,
    back: Annotated[str, Form(max_length=20)] = "/tasks",
) -> Response:
    """Mark a task done, then back to the list it was on (a second click: the conflict page)."""
    begin_write(session)  # SQLite: the task is read, then written
    try:
        worklist.complete_task(session, actor, task_id=task_id)
    except CitygridError as error:
        # Refused before any change: the error page commits nothing but what came before.
        return _error_page(request, session, error)
    commit_before_answering(session)
    target = back if back in LIST_PATHS else "/tasks"
    return RedirectResponse(f"{target}?done={task_id}", status_code=303)
