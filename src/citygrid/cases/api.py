"""Cases JSON routes: intake, reading, the loop's transitions, lists, the catalogue and its
district overrides, duplicate suggestions and "me too".

Static paths (``categories``, ``category-overrides``; later ``stream``, ``evaluation``) are
declared before ``/{case_id}`` so that they are never taken for a case reference.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.access.deps import CurrentActor
from citygrid.access.persons_api import begin_audited_read, commit_before_answering
from citygrid.cases import catalogue_admin, evaluation, intake, service
from citygrid.cases.evaluation_schemas import EvaluationRead
from citygrid.cases.feed import feed_of
from citygrid.cases.forms import Submission, read_submission
from citygrid.cases.models import CaseState
from citygrid.cases.schemas import (
    CaseCreate,
    CaseDetail,
    CaseList,
    CaseRead,
    CatalogueClassRead,
    CatalogueOverrideSet,
    CatalogueRead,
    CategoryList,
    CategoryOverrideHistory,
    CategoryOverrideList,
    CategoryOverrideRead,
    CategoryOverrideSet,
    DuplicateList,
    DuplicateRead,
    MeTooRead,
    ReporterRead,
    ReporterReveal,
    TransitionCreate,
)
from citygrid.cases.stream import EventStreamResponse
from citygrid.kit.db import SQLITE_BEGIN
from citygrid.kit.errors import CitygridError, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow
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


async def submission(request: Request, actor: CurrentActor) -> Submission:
    """The request's fields and checked photos (JSON, or multipart with ``photos``), read
    after the caller is known and before the write lock is taken."""
    return await read_submission(request)


SubmissionDep = Annotated[Submission, Depends(submission)]


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema with its ``$defs`` written in place (OpenAPI resolves ``$ref`` against
    its own document, where a model's local definitions do not exist)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def _body_doc(
    schema: type[CaseCreate] | type[TransitionCreate], form_note: str
) -> dict[str, object]:
    """OpenAPI of a body that is JSON or a multipart form with photos."""
    json_schema = _inlined(schema.model_json_schema())
    form_schema = {
        "type": "object",
        "description": form_note,
        "properties": {
            "photos": {"type": "array", "items": {"type": "string", "format": "binary"}}
        },
    }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": json_schema},
                "multipart/form-data": {"schema": form_schema},
            },
        }
    }


# ---------------------------------------------------------------- catalogue


@router.get("/categories", response_model=CategoryList)
def read_categories() -> CategoryList:
    """The catalogue: components and events with criteria, departments and deadlines."""
    return service.catalogue_read()


@router.get("/catalogue", response_model=CatalogueRead)
def read_catalogue(
    session: SessionDep,
    actor: CurrentActor,
    district_code: Annotated[
        str | None,
        Query(description="A district's or the city's code: the catalogue as it applies there"),
    ] = None,
) -> CatalogueRead:
    """The catalogue by major class, with the overrides of a district and its city laid over
    the file's values (``overridden`` names the changed fields). Everyone signed in."""
    return catalogue_admin.catalogue_view(session, actor, district_code=district_code)


@router.get("/catalogue/{category}", response_model=CatalogueClassRead)
def read_catalogue_class(
    category: str,
    session: SessionDep,
    actor: CurrentActor,
    district_code: Annotated[
        str | None, Query(description="A district's or the city's code")
    ] = None,
) -> CatalogueClassRead:
    """One minor class as it applies in a district or the city. Everyone signed in."""
    return catalogue_admin.class_view(
        session, actor, category_code=category, district_code=district_code
    )


@router.get("/catalogue/{category}/history", response_model=CategoryOverrideHistory)
def read_catalogue_history(
    category: str, session: SessionDep, actor: CurrentActor
) -> CategoryOverrideHistory:
    """Who changed the class's overrides, when, and to what; newest first (administrators)."""
    rows = catalogue_admin.history(session, actor, category_code=category)
    return CategoryOverrideHistory(items=[catalogue_admin.change_read(row) for row in rows])


@router.put("/catalogue/{category}", response_model=CategoryOverrideRead)
def put_catalogue_override(
    category: str, data: CatalogueOverrideSet, session: WriteSessionDep, actor: CurrentActor
) -> CategoryOverrideRead:
    """Set the override of a class for a district or the city: department, deadlines per
    priority, criteria; a field left out keeps the value below (administrators)."""
    row = catalogue_admin.set_override(
        session, actor, category_code=category, district_code=data.district_code, data=data
    )
    return catalogue_admin.override_read(row)


@router.delete(
    "/catalogue/{category}/overrides/{district_code}", status_code=status.HTTP_204_NO_CONTENT
)
def delete_catalogue_override(
    category: str, district_code: str, session: WriteSessionDep, actor: CurrentActor
) -> Response:
    """Remove the override of a class for a district or the city (administrators)."""
    catalogue_admin.remove_override(
        session, actor, category_code=category, district_code=district_code
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/category-overrides", response_model=CategoryOverrideList)
def read_category_overrides(session: SessionDep, actor: CurrentActor) -> CategoryOverrideList:
    """Every override, city-wide and per district, with who changed it (administrators)."""
    rows = service.list_category_overrides(session, actor)
    return CategoryOverrideList(items=[catalogue_admin.override_read(row) for row in rows])


@router.put("/category-overrides", response_model=CategoryOverrideRead)
def put_category_override(
    data: CategoryOverrideSet, session: WriteSessionDep, actor: CurrentActor
) -> CategoryOverrideRead:
    """Override a category for a district or the city (administrators); same as
    ``PUT /api/v1/cases/catalogue/{category}`` with the category in the body."""
    return catalogue_admin.override_read(service.set_category_override(session, actor, data=data))


@router.delete(
    "/category-overrides/{district_code}/{category}", status_code=status.HTTP_204_NO_CONTENT
)
def delete_category_override(
    district_code: str, category: str, session: WriteSessionDep, actor: CurrentActor
) -> Response:
    """Return a district to the catalogue's department for a category (administrators)."""
    service.delete_category_override(session, actor, district_code=district_code, category=category)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------- evaluation


@router.get("/evaluation", response_model=EvaluationRead)
def read_evaluation(
    session: SessionDep,
    actor: CurrentActor,
    group_by: Annotated[
        str | None,
        Query(
            description="department, street, community or grid (default department)",
            json_schema_extra={"enum": list(evaluation.GROUP_BYS)},
        ),
    ] = None,
    date_from: Annotated[
        str | None,
        Query(
            alias="from",
            description="First day, YYYY-MM-DD in China time (default: 29 days before to)",
        ),
    ] = None,
    date_to: Annotated[
        str | None,
        Query(alias="to", description="Last day, included, YYYY-MM-DD (default: today)"),
    ] = None,
) -> EvaluationRead:
    """The evaluation (综合评价) of the cases reported in a period within the caller's
    territory: registration, closure, on-time closure and rework rates, mean and 90th
    percentile handling time in working hours, per group and in total. Definitions:
    docs/evaluation.md."""
    grouping = evaluation.parse_group_by(group_by)
    period = evaluation.parse_period(date_from, date_to, now=utcnow())
    return evaluation.evaluate(session, actor, group_by=grouping, period=period)


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
    status_code=status.HTTP_200_OK,
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
    responses={
        200: {"description": "The case first filed with this Idempotency-Key"},
        413: {"description": "The submission is larger than its photos may be together"},
    },
    openapi_extra=_body_doc(
        CaseCreate,
        "The JSON fields as form fields (reporter_contact as reporter_name and "
        "reporter_phone), and one or more photos; without lat/lon the first photo's GPS "
        "position is the location",
    ),
)
def create_case(
    body: SubmissionDep,
    response: Response,
    request: Request,
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
    """File a case (JSON, or multipart with photos); 201 with the new case, or 200 with the
    earlier one for a repeated key (the case without its history and photos:
    ``GET /api/v1/cases/{id}`` has them)."""
    settings = request.app.state.settings
    filed = intake.file_case(
        session,
        actor,
        fields=body.fields,
        photos=body.photos,
        locator=locator,
        store=intake.photo_store(settings),
        idempotency_key=idempotency_key or body.extra.get("idempotency_key") or None,
    )
    response.status_code = status.HTTP_201_CREATED if filed.created else status.HTTP_200_OK
    response.headers["Location"] = f"/api/v1/cases/{filed.case.ref}"
    return service.case_read(session, filed.case)


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


@router.post(
    "/{case_id}/transitions",
    response_model=CaseDetail,
    openapi_extra=_body_doc(
        TransitionCreate,
        "The JSON fields as form fields, and photos (feedback and verify only)",
    ),
)
def post_transition(
    case_id: CaseRef,
    body: SubmissionDep,
    request: Request,
    session: WriteSessionDep,
    actor: CurrentActor,
) -> CaseDetail:
    """Take one step of the loop: register, reject, dispatch, return, accept, feedback,
    verify, evaluate; feedback and verify may carry photos (multipart)."""
    step = intake.parse(TransitionCreate, body.fields)
    case = intake.apply_transition(
        session,
        actor,
        case_ref=case_id,
        request=step,
        photos=body.photos,
        store=intake.photo_store(request.app.state.settings),
    )
    return service.detail_of(session, case)


PhotoId = Annotated[str, Path(description="The photo's id (its content hash)", max_length=64)]
PHOTO_CACHE_CONTROL = "private, max-age=86400, immutable"


def _photo_response(request: Request, found: intake.PhotoFile) -> Response:
    headers = {"Cache-Control": PHOTO_CACHE_CONTROL, "ETag": found.etag}
    if request.headers.get("if-none-match") == found.etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return FileResponse(found.path, media_type=found.content_type, headers=headers)


@router.get(
    "/{case_id}/photos/{photo_id}",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
def read_photo(
    case_id: CaseRef, photo_id: PhotoId, request: Request, session: SessionDep, actor: CurrentActor
) -> Response:
    """A photo of a case, metadata stripped (404 outside the caller's territory). Cached
    privately: its URL names its content, which never changes."""
    found = intake.photo_file(
        session,
        actor,
        case_ref=case_id,
        photo_id=photo_id,
        store=intake.photo_store(request.app.state.settings),
    )
    return _photo_response(request, found)


@router.get(
    "/{case_id}/photos/{photo_id}/thumbnail",
    response_class=FileResponse,
    responses={200: {"content": {"image/jpeg": {}}}},
)
def read_photo_thumbnail(
    case_id: CaseRef, photo_id: PhotoId, request: Request, session: SessionDep, actor: CurrentActor
) -> Response:
    """The thumbnail of a case's photo (a JPEG of at most 400 x 400)."""
    found = intake.photo_file(
        session,
        actor,
        case_ref=case_id,
        photo_id=photo_id,
        store=intake.photo_store(request.app.state.settings),
        thumbnail=True,
    )
    return _photo_response(request, found)


def _audited(session: Session, read: Callable[[], ReporterRead]) -> Response:
    """Run a gateway read: the read and its access-log entry (or a refusal and its denied
    entry) commit together before the answer leaves."""
    begin_audited_read(session)
    try:
        body: Any = read().model_dump()
        status_code = status.HTTP_200_OK
    except CitygridError as error:
        gateway.record_denial(session, error)
        body, status_code = error.to_dict(), error.status_code
    content = orjson.dumps(body)
    commit_before_answering(session)
    return Response(content, status_code=status_code, media_type="application/json")


@router.get("/{case_id}/reporter", response_model=ReporterRead)
def read_reporter(
    case_id: CaseRef,
    session: SessionDep,
    actor: CurrentActor,
    purpose: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    """The contact the reporter left (hotline, public page): personal data, masked by
    policy, for a purpose of use, and written in the access log."""
    return _audited(
        session, lambda: intake.reporter(session, actor, case_ref=case_id, purpose=purpose)
    )


@router.post("/{case_id}/reporter/reveal", response_model=ReporterRead)
def reveal_reporter(
    case_id: CaseRef, data: ReporterReveal, session: SessionDep, actor: CurrentActor
) -> Response:
    """The reporter's name or phone in clear, where the purpose allows revealing it
    (audited with exactly the fields revealed)."""
    return _audited(
        session,
        lambda: intake.reporter(
            session, actor, case_ref=case_id, purpose=data.purpose, reveal=data.fields
        ),
    )


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
