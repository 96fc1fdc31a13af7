"""Task list JSON routes: ``GET /api/v1/tasks`` and ``POST /api/v1/tasks/{task_id}/complete``.
Thin: parse, call ``worklist``, answer (after committing the list's access-log entry)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from citygrid.access import gateway
from citygrid.access.deps import CurrentActor
from citygrid.access.persons_api import begin_audited_read, commit_before_answering
from citygrid.exchange import worklist
from citygrid.exchange.worklist import TaskFilter, TaskItem, TaskList
from citygrid.kit.db import begin_write
from citygrid.kit.errors import CitygridError
from citygrid.kit.web import SessionDep

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])


@router.get(
    "",
    response_model=TaskList,
    responses={403: {"description": "The caller's role has no task list"}},
)
def list_tasks(
    session: SessionDep,
    actor: CurrentActor,
    state: Annotated[TaskFilter, Query(description="open (default) or done")] = TaskFilter.OPEN,
    limit: Annotated[int, Query(ge=1, le=worklist.MAX_TASKS)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """The caller's tasks: a grid worker's grid tasks, a department's tasks in the caller's
    territory, or (to follow them) an official's grid tasks; the most urgent first. Each
    subject is shown as the caller's policy shows it (masked), read for the purpose
    ``life-event-notification`` and logged."""
    begin_audited_read(session)
    try:
        result = worklist.list_tasks(session, actor, state=state, limit=limit, offset=offset)
    except CitygridError as error:
        gateway.record_denial(session, error)
        commit_before_answering(session)
        return JSONResponse(error.to_dict(), status_code=error.status_code)
    body = result.model_dump(mode="json")
    commit_before_answering(session)
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post(
    "/{task_id}/complete",
    response_model=TaskItem,
    responses={
        403: {"description": "The caller follows the task but is not its assignee"},
        404: {"description": "No such task among the caller's"},
        409: {"description": "The task is already done"},
    },
)
def complete_task(
    session: SessionDep,
    actor: CurrentActor,
    task_id: Annotated[int, Path(ge=1)],
) -> TaskItem:
    """Mark one of the caller's open tasks done (who and when are recorded)."""
    begin_write(session)  # SQLite: the task is read, then written
    return worklist.complete_task(session, actor, task_id=task_id)
