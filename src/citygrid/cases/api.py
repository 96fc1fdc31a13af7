"""Cases JSON routes: intake, reading, the loop's transitions, lists, the catalogue and its
district overrides, duplicate suggestions and "me too".

Static paths (``categories``, ``category-overrides``; later ``stream``, ``evaluation``) are
declared before ``/{case_id}`` so that they are never taken for a case reference.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from citygrid.access.deps import CurrentActor
from citygrid.cases import service
from citygrid.cases.feed import feed_of
from citygrid.cases.models import CaseState, CategoryOverride
from citygrid.cases.schemas import (
    CaseCreate,
    CaseDetail,
    CaseList,
    CaseRead,
    CategoryList,
    CategoryOverrideList,
    CategoryOverrideRead,
    CategoryOverrideSet,
    DuplicateList,
    DuplicateRead,
    MeTooRead,
    TransitionCreate,
)
from citygrid.cases.stream import EventStreamResponse
from citygrid.kit.db import SQLITE_BEGIN
from citygrid.kit.errors import ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.web import SessionDep
from citygrid.territory.api import LocatorDep

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])

CaseRef = Annotated[str, Path(description="The case's opaque reference")]


# Writers of this process queue here rather than in SQLite's busy handler, which sleeps in
# steps of up to 100 ms. Other processes are kept in turn by the write lock itself.
_sqlite_writers = threading.Lock()


def write_session(session: SessionDep) -> Iterator[Session]:
    """The request's session, holding SQLite's write lock until it commits.

    A case write reads first (the key, the case, its scope) and then writes. On SQLite a
    deferred transaction that has read cannot write once another request committed since
    ("database is locked", at once: a stale WAL snapshot cannot be upgraded). So the reads
    done so far (who is calling) are committed, and the unit of work goes on in a transaction
    that takes the write lock at its start and commits before the answer: writers take turns,
    readers do not wait. Nothing to do on PostgreSQL, nor inside a savepoint that a caller
    (a test) opened.
    """
    if session.get_bind().dialect.name != "sqlite" or session.in_nested_transaction():
        yield session
        return
    session.commit()
    with _sqlite_writers:
        session.connection(execution_options={SQLITE_BEGIN: "IMMEDIATE"})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


WriteSessionDep = Annotated[Session, Depends(write_session, scope="function")]


def _override_read(row: CategoryOverride) -> CategoryOverrideRead:
    return CategoryOverrideRead(
        district_code=row.district_code,
        category=row.category,
        department=row.department,
        updated_by=row.updated_by,
        updated_at=row.updated_at,
    )


# ---------------------------------------------------------------- catalogue


@router.get("/categories", response_model=CategoryList)
def read_categories() -> CategoryList:
    """The catalogue: components and events with criteria, departments and deadlines."""
    return service.catalogue_read()


@router.get("/category-overrides", response_model=CategoryOverrideList)
def read_category_overrides(session: SessionDep, actor: CurrentActor) -> CategoryOverrideList:
    """Every district's own department for a category."""
    rows = service.list_category_overrides(session, actor)
    return CategoryOverrideList(items=[_override_read(row) for row in rows])


@router.put("/category-overrides", response_model=CategoryOverrideRead)
def put_category_override(
    data: CategoryOverrideSet, session: WriteSessionDep, actor: CurrentActor
) -> CategoryOverrideRead:
    """Send a category to another department in one district (administrators)."""
    return _override_read(service.set_category_override(session, actor, data=data))


@router.delete(
    "/category-overrides/{district_code}/{category}", status_code=status.HTTP_204_NO_CONTENT
)
def delete_category_override(
    district_code: str, category: str, session: WriteSessionDep, actor: CurrentActor
) -> Response:
    """Return a district to the catalogue's department for a category (administrators)."""
    service.delete_category_override(session, actor, district_code=district_code, category=category)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- live feed

# The largest id an SQL BIGINT holds.
_EVENT_ID_MAX = 2**63 - 1


def _last_event_id(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or int(text) > _EVENT_ID_MAX:
        raise ValidationFailed.one("Last-Event-ID", _("must be the id of an event of this stream"))
    return int(text)


@router.get(
    "/stream",
    response_class=EventStreamResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "Server-sent events ``case.created`` and ``case.changed`` of the "
            "cases in the caller's territory, each with its ``id``; comments as heartbeats",
        }
    },
)
async def stream_cases(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this event (browsers send it when they reconnect)",
        ),
    ] = None,
    after: Annotated[
        str | None,
        Query(description="Resume after this event id (for clients that cannot set headers)"),
    ] = None,
) -> EventStreamResponse:
    """New and changed cases in the caller's territory, live (server-sent events)."""
    resume = _last_event_id(last_event_id if last_event_id is not None else after)
    # The caller is known: give the request's connection back to the pool now. A stream
    # lasts for hours; the feed reads with connections of its own, briefly.
    await run_in_threadpool(session.close)
    feed = feed_of(request.app)
    subscription = await feed.subscribe(service.visible_scopes(actor), resume)
    return EventStreamResponse(
        feed.stream(subscription), on_close=lambda: feed.unsubscribe(subscription)
    )


# ---------------------------------------------------------------- cases


@router.post(
    "",
    response_model=CaseRead,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "The case first filed with this Idempotency-Key"}},
)
def create_case(
    data: CaseCreate,
    response: Response,
    session: WriteSessionDep,
    actor: CurrentActor,
    locator: LocatorDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Repeat a submission safely: the same key from the same reporter "
            "returns the first case (200) instead of filing another",
        ),
    ] = None,
) -> CaseRead:
    """File a case; 201 with the new case, or 200 with the earlier one for a repeated key
    (the case without its history: ``GET /api/v1/cases/{id}`` has it)."""
    intake = service.create_case(
        session, actor, data=data, locator=locator, idempotency_key=idempotency_key
    )
    response.status_code = status.HTTP_201_CREATED if intake.created else status.HTTP_200_OK
    response.headers["Location"] = f"/api/v1/cases/{intake.case.ref}"
    return service.case_read(session, intake.case)


@router.get("", response_model=CaseList)
def list_cases(
    session: SessionDep,
    actor: CurrentActor,
    state: CaseState | None = None,
    grid: Annotated[
        str | None, Query(description="A district, street, community or grid code")
    ] = None,
    department: str | None = None,
    overdue: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=service.LIST_LIMIT_MAX)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> CaseList:
    """Cases in the caller's territory, newest first."""
    return service.list_cases(
        session,
        actor,
        state=state,
        grid=grid,
        department=department,
        overdue=overdue,
        limit=limit,
        offset=offset,
    )


@router.get("/{case_id}", response_model=CaseDetail)
def read_case(case_id: CaseRef, session: SessionDep, actor: CurrentActor) -> CaseDetail:
    """A case with its history (404 outside the caller's territory)."""
    return service.case_detail(session, actor, case_ref=case_id)


@router.post("/{case_id}/transitions", response_model=CaseDetail)
def post_transition(
    case_id: CaseRef, request: TransitionCreate, session: WriteSessionDep, actor: CurrentActor
) -> CaseDetail:
    """Take one step of the loop: register, reject, dispatch, return, accept, feedback,
    verify, evaluate."""
    case = service.apply_transition(session, actor, case_ref=case_id, request=request)
    return service.detail_of(session, case)


@router.get("/{case_id}/duplicates", response_model=DuplicateList)
def read_duplicates(case_id: CaseRef, session: SessionDep, actor: CurrentActor) -> DuplicateList:
    """Open cases of the same category nearby and recent: candidates for a rejection as a
    duplicate at registration."""
    suggestions = service.suggest_duplicates(session, actor, case_ref=case_id)
    return DuplicateList(
        items=[
            DuplicateRead(
                case=service.case_read(session, item.case), distance_m=round(item.distance_m, 1)
            )
            for item in suggestions
        ]
    )


@router.post("/{case_id}/me-too", response_model=MeTooRead)
def post_me_too(case_id: CaseRef, session: WriteSessionDep, actor: CurrentActor) -> MeTooRead:
    """Say "me too" on an open case: counted once per reporter."""
    result = service.add_me_too(session, actor, case_ref=case_id)
    return MeTooRead(id=result.case.ref, added=result.added, me_too_count=result.case.me_too_count)
