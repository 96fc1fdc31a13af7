"""Exchange JSON routes: the catalogue, publishing life events and dataset records, and the
publisher's view of what became of its events. Thin: parse, call the service, answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from citygrid.access import gateway
from citygrid.access.deps import CurrentActor
from citygrid.access.persons_api import commit_before_answering
from citygrid.exchange import scoreboard as scoreboard_service
from citygrid.exchange import service
from citygrid.exchange.events import life_event_json_schema
from citygrid.exchange.schemas import (
    MAX_BATCH,
    CatalogueRead,
    EventAnswer,
    EventBatch,
    EventBatchAnswer,
    PublishReport,
    RecordsPublish,
    ScoreboardRead,
    TaskRead,
)
from citygrid.kit.errors import CitygridError
from citygrid.kit.web import SessionDep

router = APIRouter(prefix="/api/v1/exchange", tags=["exchange"])

REPLAYED_HEADER = "Idempotent-Replayed"

DatasetPath = Annotated[
    str, Path(description="A dataset of the catalogue", examples=["subsistence_allowances"])
]


@router.get("/catalogue", response_model=CatalogueRead)
def catalogue(session: SessionDep) -> CatalogueRead:
    """The data catalogue: member departments, their datasets (fields, field classes,
    classification, promised frequency) and the life event types each may publish."""
    return service.catalogue_read(session)


@router.get("/scoreboard", response_model=ScoreboardRead)
def scoreboard(
    session: SessionDep,
    window_days: Annotated[
        int,
        Query(ge=1, le=scoreboard_service.MAX_WINDOW_DAYS, description="Days of lags and rows"),
    ] = scoreboard_service.DEFAULT_WINDOW_DAYS,
) -> ScoreboardRead:
    """The sharing scoreboard: per member department, datasets promised vs published,
    freshness against the promised frequency, median lag of its life events, rejected-row
    rate, subscriptions served, and whether it is behind its promise."""
    return scoreboard_service.scoreboard(session, window_days=window_days)


@router.post(
    "/events",
    status_code=202,
    response_model=EventAnswer,
    responses={
        403: {"description": "The caller's department does not own the event type"},
        409: {"description": "source_event_id was used for a different event"},
        422: {"description": "Malformed event, or an unknown person or housing unit"},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": life_event_json_schema()}},
        }
    },
)
def publish_event(
    session: SessionDep,
    actor: CurrentActor,
    event: Annotated[dict[str, Any], Body(description="A life event, told apart by `type`")],
) -> JSONResponse:
    """Publish a life event. The same ``source_event_id`` published again answers with the
    first answer (same status and body, header ``Idempotent-Replayed: true``) and has no
    second effect."""
    outcome = service.publish_event(session, actor, data=event)
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else {}
    return JSONResponse(outcome.body, status_code=outcome.status_code, headers=headers)


@router.post(
    "/events/batch",
    response_model=EventBatchAnswer,
    responses={
        403: {"description": "The caller is not a member department"},
        422: {
            "description": "Not a list of 1 to 1,000 events (the events themselves are "
            "answered one by one)"
        },
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["events"],
                        "additionalProperties": False,
                        "properties": {
                            "events": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": service.MAX_EVENT_BATCH,
                                "items": life_event_json_schema(),
                            }
                        },
                    }
                }
            },
        }
    },
)
def publish_events(session: SessionDep, actor: CurrentActor, batch: EventBatch) -> JSONResponse:
    """Publish up to 1,000 life events in one request and one transaction. Each event is
    published as by ``POST /events`` (same rules, same answer, idempotent per
    ``source_event_id``) and gets its own result; a refused event changes nothing and does
    not stop the others."""
    items = service.publish_events(session, actor, events=batch.events)
    results = [
        {
            "index": item.index,
            "status": item.status_code,
            "replayed": item.replayed,
            "body": item.body,
        }
        for item in items
    ]
    replayed = sum(1 for item in items if item.replayed)
    refused = sum(1 for item in items if item.status_code >= 400)
    body = {
        "accepted": len(items) - replayed - refused,
        "replayed": replayed,
        "refused": refused,
        "results": results,
    }
    return JSONResponse(body)


@router.get("/events/{event_id}")
def event_status(
    session: SessionDep,
    actor: CurrentActor,
    event_id: Annotated[int, Path(ge=1)],
) -> dict[str, Any]:
    """One of the caller's department's events: its answer, its outbox entries and which
    reactions applied them, and the tasks it created (404 for another department's)."""
    return service.event_delivery(session, actor, event_id=event_id)


@router.post(
    "/datasets/{dataset}/records",
    response_model=PublishReport,
    responses={
        403: {"description": "The caller's department does not own the dataset"},
        422: {"description": f"all_or_nothing with rejected rows, or more than {MAX_BATCH} rows"},
    },
)
def publish_records(
    session: SessionDep,
    actor: CurrentActor,
    dataset: DatasetPath,
    batch: RecordsPublish,
) -> PublishReport:
    """Upsert up to 10,000 records of a dataset the caller's department owns. Each row is
    checked on its own; rejected rows are listed with their index, field and reason."""
    return service.publish_records(session, actor, dataset=dataset, data=batch)


@router.get("/tasks", response_model=list[TaskRead])
def department_tasks(session: SessionDep, actor: CurrentActor) -> list[TaskRead]:
    """The open tasks of the caller's department, the most urgent first."""
    return service.department_tasks(session, actor)


class RecordsSearch(BaseModel):
    """Whose records to read, with the ID number out of the URL."""

    model_config = ConfigDict(extra="forbid")

    purpose: str | None = None
    id_number: str = Field(min_length=1, max_length=18)


class DatasetRecordsRead(BaseModel):
    """A person's records of a dataset, shown as the policy lets the caller see them."""

    dataset: str
    purpose: str
    subject: str
    records: list[dict[str, Any]]
    masked: list[str]


def _read(session: SessionDep, read: Any) -> JSONResponse:
    """Answer a read; a refusal is answered after its denied entry is committed."""
    try:
        result: service.DatasetRecords = read()
    except CitygridError as error:
        gateway.record_denial(session, error)
        commit_before_answering(session)
        return JSONResponse(error.to_dict(), status_code=error.status_code)
    body = DatasetRecordsRead(
        dataset=result.dataset,
        purpose=result.purpose,
        subject=result.subject,
        records=result.records,
        masked=list(result.masked),
    ).model_dump(mode="json")
    commit_before_answering(session)
    return JSONResponse(body)


# Declared before the GET of records by reference: "search" is not a dataset's records.
@router.post("/datasets/{dataset}/records/search", response_model=DatasetRecordsRead)
def search_records(
    session: SessionDep, actor: CurrentActor, dataset: DatasetPath, body: RecordsSearch
) -> JSONResponse:
    """A person's records of a dataset by ID number (in the body, never in the URL), for a
    purpose: masked by policy, scoped, consent-checked and logged like every read of
    personal data."""
    return _read(
        session,
        lambda: service.read_records(
            session, actor, dataset=dataset, purpose=body.purpose, id_number=body.id_number
        ),
    )


@router.get("/datasets/{dataset}/records", response_model=DatasetRecordsRead)
def person_records(
    session: SessionDep,
    actor: CurrentActor,
    dataset: DatasetPath,
    person: Annotated[str, Query(max_length=24, description="The person's opaque reference")],
    purpose: Annotated[str | None, Query(description="The purpose of use")] = None,
) -> JSONResponse:
    """A person's records of a dataset by opaque reference, for a purpose (see the search)."""
    return _read(
        session,
        lambda: service.read_records(
            session, actor, dataset=dataset, purpose=purpose, person_ref=person
        ),
    )
