"""Pydantic shapes of the exchange: the rows of each dataset, publish requests and reports,
the answer to a life event, the catalogue, members and tasks.

Error reasons never contain the rejected value: it may be personal data.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from citygrid.exchange.models import AllowanceStatus, PensionStatus, TenancyStatus
from citygrid.registry.models import MaritalStatus
from citygrid.registry.schemas import FieldProblem, check_id_number

MAX_BATCH = 10_000
"""The most records one publish may carry."""

Money = Annotated[Decimal, Field(ge=0, le=1_000_000, max_digits=12, decimal_places=2)]
Slug = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,39}$")]


class PublishMode(enum.StrEnum):
    """What to do with a batch that has rejected rows."""

    ALL_OR_NOTHING = "all_or_nothing"  # any rejected row: nothing is written (422)
    VALID_ROWS = "valid_rows"  # the valid rows are written, the rejected ones listed


# ============================================================================ dataset rows


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id_number: str = Field(description="The subject's resident ID number")

    _id_number = field_validator("id_number")(check_id_number)


class AllowanceRow(_Row):
    """A subsistence allowance (civil affairs)."""

    amount: Money
    status: AllowanceStatus
    since: date


class PensionRow(_Row):
    """A pension (social security)."""

    amount: Money
    status: PensionStatus
    since: date


class MaritalRow(_Row):
    """A marital status (family planning)."""

    marital_status: MaritalStatus
    since: date | None = None


class TenancyRow(_Row):
    """A tenancy of a registry housing unit (rental housing office)."""

    unit_id: int = Field(ge=1)
    since: date
    until: date | None = None
    status: TenancyStatus = TenancyStatus.ACTIVE

    @model_validator(mode="after")
    def _period(self) -> TenancyRow:
        if self.until is not None and self.until < self.since:
            raise FieldProblem("until", "before the start of the tenancy")
        if self.status is TenancyStatus.ENDED and self.until is None:
            raise FieldProblem("until", "required when the tenancy has ended")
        return self


class CriminalRecordRow(_Row):
    """Whether public security holds a criminal record on the person (confidential)."""

    criminal_record: bool
    since: date | None = None


ROW_MODELS: dict[str, type[_Row]] = {
    "subsistence_allowances": AllowanceRow,
    "pensions": PensionRow,
    "marital_statuses": MaritalRow,
    "tenancies": TenancyRow,
    "criminal_records": CriminalRecordRow,
}
"""Dataset slug -> the shape of one of its rows."""


# ============================================================================ publishing


class RecordsPublish(BaseModel):
    """A batch of upserts to a dataset, each row checked on its own."""

    model_config = ConfigDict(extra="forbid")

    mode: PublishMode = PublishMode.ALL_OR_NOTHING
    records: list[Any] = Field(min_length=1, max_length=MAX_BATCH)


class RowProblem(BaseModel):
    """Why one row of a batch was rejected (0-based ``index`` in ``records``)."""

    index: int
    field: str
    reason: str


class PublishReport(BaseModel):
    """What a batch did: rows created, updated, unchanged, and every rejected one."""

    dataset: str
    mode: PublishMode
    received: int
    created: int
    updated: int
    unchanged: int
    rejected: list[RowProblem]


class EventAnswer(BaseModel):
    """The answer to a published life event (the same every time it is published)."""

    event_id: int
    type: str
    source_event_id: str
    applied: bool
    reason: str | None = Field(
        description="Why it was recorded but not applied: superseded, subject_deceased, "
        "already_deceased, no_open_residence, no_active_tenancy, already_resident"
    )
    subject: str | None = Field(description="The opaque reference of the person it is about")
    occurred_at: datetime
    received_at: datetime


class EventBatch(BaseModel):
    """A batch of life events, each published as if alone, in one transaction."""

    model_config = ConfigDict(extra="forbid")

    events: list[Any] = Field(
        description="1 to 1,000 life events, each told apart by `type` (see the single publish)"
    )


class EventBatchResult(BaseModel):
    """What became of one event of a batch: the status and body a single publish of it
    would have answered (an event's answer, or an error)."""

    index: int = Field(description="0-based position of the event in the batch")
    status: int = Field(description="202 accepted (or replayed), else the error's status")
    replayed: bool = Field(description="The key was published before: this is the first answer")
    body: dict[str, Any] = Field(description="The event's answer, or `{error: {...}}`")


class EventBatchAnswer(BaseModel):
    """The answer to a batch: one result per event, in order, and the counts."""

    accepted: int = Field(description="Events newly accepted (applied or recorded)")
    replayed: int = Field(description="Events whose key had been published before")
    refused: int = Field(description="Events refused with an error; they changed nothing")
    results: list[EventBatchResult]


# ============================================================================ catalogue


class MemberRead(BaseModel):
    """A member department."""

    slug: str
    name: str
    name_zh: str
    name_en: str
    contact: str
    datasets: list[str]
    event_types: list[str]


class MemberCreate(BaseModel):
    """A new member department."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    slug: Slug
    name_zh: str = Field(min_length=1, max_length=100)
    name_en: str = Field(min_length=1, max_length=200)
    contact: str = Field(default="", max_length=200)


class FieldRead(BaseModel):
    """A field of a dataset."""

    name: str
    type: str
    values: list[str]
    field_class: str
    label: str
    label_zh: str
    label_en: str


class DatasetRead(BaseModel):
    """A dataset of the catalogue."""

    slug: str
    owner: str
    name: str
    name_zh: str
    name_en: str
    classification: str
    frequency: str
    max_age_days: int
    field_classes: list[str]
    fields: list[FieldRead]


class EventTypeRead(BaseModel):
    """A life event type and its owner."""

    type: str
    owner: str
    name: str
    name_zh: str
    name_en: str
    topic: str


class CatalogueRead(BaseModel):
    """The data catalogue: members, datasets and life event types."""

    version: int
    members: list[MemberRead]
    datasets: list[DatasetRead]
    event_types: list[EventTypeRead]


class TaskRead(BaseModel):
    """A task created by a reaction (no personal data: the subject is an opaque ref)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    assignee_kind: str
    assignee: str
    grid_code: str
    kind: str
    subject: str | None
    due_at: datetime
    state: str
    created_by_event_id: int | None
    created_at: datetime


# ============================================================================ scoreboard


class DatasetStanding(BaseModel):
    """How a promised dataset stands: its last publication against its promised frequency."""

    slug: str
    name: str
    frequency: str
    max_age_days: int
    last_published_at: datetime | None = Field(
        description="The last batch with at least one accepted row"
    )
    age_days: float | None = Field(description="Days since then")
    state: str = Field(description="fresh, stale (older than max_age_days) or never")


class DepartmentScore(BaseModel):
    """One department on the scoreboard (the mayor's rule: no data, no funding)."""

    slug: str
    name: str
    datasets_promised: int
    datasets_published: int = Field(description="Promised datasets published at least once")
    datasets_fresh: int
    datasets: list[DatasetStanding]
    events_published: int = Field(description="Life events received in the window")
    median_lag_seconds: float | None = Field(
        description="Median of received_at - occurred_at of those events"
    )
    rows_received: int = Field(description="Dataset rows received in the window")
    rows_rejected: int
    rejected_rate: float | None = Field(description="rows_rejected / rows_received")
    subscriptions_served: int = Field(description="Subscriptions to the department's topics")
    behind: bool = Field(description="A promised dataset is stale or was never published")
    reasons: list[str] = Field(description="never_published, stale")


class ScoreboardRead(BaseModel):
    """Every member department's standing."""

    generated_at: datetime
    window_days: int
    departments: list[DepartmentScore]
