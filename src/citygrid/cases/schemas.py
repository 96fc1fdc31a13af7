"""Pydantic v2 shapes of the cases API: intake, transitions, reads, the catalogue, overrides.

Error reasons never contain the rejected value: it may be personal data.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from citygrid.cases.models import Action, CaseKind, CaseSource, CaseState, PhotoStage, Priority

DESCRIPTION_MAX = 2000
NOTE_MAX = 2000
IDEMPOTENCY_KEY_MAX = 64

_PHONE = re.compile(r"^\+?[0-9][0-9 \-]{2,18}[0-9]$")


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ReporterContact(_Shape):
    """How to reach a resident who reported by phone or on the public page (personal data:
    stored, never shown without the access gateway)."""

    name: Annotated[str, Field(min_length=1, max_length=50)] | None = None
    phone: Annotated[str, Field(min_length=3, max_length=20)] | None = None

    @field_validator("phone")
    @classmethod
    def _phone_shape(cls, value: str | None) -> str | None:
        if value is not None and not _PHONE.match(value):
            raise ValueError("must be digits, optionally with +, spaces or dashes")
        return value


class CaseCreate(_Shape):
    """A new report: what (category), where (lat/lon, address), how urgent, and optionally
    how to reach the resident who reported it."""

    category: Annotated[
        str, Field(min_length=1, max_length=5, examples=["C0201"], description="Category code")
    ]
    description: Annotated[str, Field(min_length=1, max_length=DESCRIPTION_MAX)]
    priority: Priority = Priority.NORMAL
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False, description="WGS 84")]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False, description="WGS 84")]
    address: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    reporter_contact: ReporterContact | None = None


class TransitionCreate(_Shape):
    """One step of the loop. Extra fields by action: ``department`` (dispatch, optional:
    the routed department by default), ``priority`` (register, dispatch: optional change),
    ``result`` (verify: pass or fail), ``score`` (evaluate: 1 very dissatisfied .. 5 very
    satisfied), ``reason`` and ``duplicate_of`` (reject)."""

    action: Action
    note: Annotated[str, Field(max_length=NOTE_MAX)] | None = None
    department: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    priority: Priority | None = None
    result: Literal["pass", "fail"] | None = None
    score: Annotated[int, Field(ge=1, le=5)] | None = None
    reason: Literal["not_meeting_criterion", "duplicate"] | None = None
    duplicate_of: Annotated[str, Field(min_length=1, max_length=24)] | None = None


class TransitionRead(BaseModel):
    """A step of a case's history."""

    action: Action
    from_state: CaseState | None
    to_state: CaseState
    actor_name: str
    actor_role: str
    actor_department: str | None
    at: datetime
    note: str | None
    data: dict[str, object]


class CaseRead(BaseModel):
    """A case as the API shows it (without the reporter's contact)."""

    id: str = Field(description="The case's opaque reference (Open311 service_request_id)")
    category: str
    category_name: str
    kind: CaseKind
    priority: Priority
    state: CaseState
    description: str
    lat: float
    lon: float
    address: str | None
    grid_code: str
    community_code: str
    street_code: str
    district_code: str
    source: CaseSource
    department: str
    reported_at: datetime
    registered_at: datetime | None
    dispatched_at: datetime | None
    deadline_at: datetime | None
    accepted_at: datetime | None
    handled_at: datetime | None
    closed_at: datetime | None
    evaluated_at: datetime | None
    escalated_at: datetime | None
    overdue: bool
    rework_count: int
    duplicate_of: str | None
    me_too_count: int
    satisfaction: int | None
    updated_at: datetime


class PhotoRead(BaseModel):
    """A photo of a case: where to fetch it and its thumbnail, and at which step it came."""

    id: str = Field(description="The photo's content hash (opaque)")
    url: str
    thumbnail_url: str
    stage: PhotoStage
    content_type: str
    width: int
    height: int


class CaseDetail(CaseRead):
    """A case with its history, oldest step first, and its photos."""

    transitions: list[TransitionRead]
    photos: list[PhotoRead] = Field(default_factory=list)


class ReporterRead(BaseModel):
    """The contact a resident left with a report, as the caller may see it (masked by
    policy), for a purpose; the read is in the access log."""

    id: str = Field(description="The case's reference")
    purpose: str
    name: str | None
    phone: str | None
    masked: list[str]
    revealable: list[str]


class ReporterReveal(_Shape):
    """Ask for the reporter's fields in clear, for a purpose that allows it."""

    purpose: Annotated[str, Field(min_length=1, max_length=40)]
    fields: Annotated[list[Literal["name", "phone"]], Field(min_length=1, max_length=2)]


class CaseList(BaseModel):
    """A page of cases, newest first; ``next_offset`` is None on the last page."""

    items: list[CaseRead]
    next_offset: int | None


class DuplicateRead(BaseModel):
    """An open case that may be the same problem, with how far away it is."""

    case: CaseRead
    distance_m: float


class DuplicateList(BaseModel):
    """Suggested duplicates of a case, nearest first."""

    items: list[DuplicateRead]


class MeTooRead(BaseModel):
    """The answer to "me too": whether this reporter was new, and the count."""

    id: str
    added: bool
    me_too_count: int


class DeadlineRead(BaseModel):
    """A deadline length: ``amount`` working hours (``unit`` h) or working days (d)."""

    amount: int
    unit: Literal["h", "d"]


class CategoryRead(BaseModel):
    """A minor class of the catalogue."""

    code: str
    kind: CaseKind
    major_code: str
    major_name: str
    minor_code: str
    slug: str
    name: str
    name_zh: str
    name_en: str
    department: str
    register_criterion: str
    close_criterion: str
    deadlines: dict[Priority, DeadlineRead]
    duplicate_radius_m: int
    duplicate_window_h: int


class CategoryList(BaseModel):
    """The catalogue in code order."""

    version: int
    items: list[CategoryRead]


CRITERION_MAX = 1000
DurationText = Annotated[str, Field(min_length=2, max_length=8, examples=["4h", "2d"])]
CriterionText = Annotated[str, Field(min_length=1, max_length=CRITERION_MAX)]


class OverrideFields(_Shape):
    """What an administrator may change in a minor class; a field left out keeps the value
    of the city's override, else of ``catalogue.toml``. Deadlines are ``"<n>h"`` working
    hours or ``"<n>d"`` working days, per priority."""

    department: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    deadlines: (
        Annotated[
            dict[Annotated[str, Field(max_length=16)], DurationText],
            Field(description="By priority: urgent, high, normal", max_length=3),
        ]
        | None
    ) = None
    register_zh: CriterionText | None = None
    register_en: CriterionText | None = None
    close_zh: CriterionText | None = None
    close_en: CriterionText | None = None


class CatalogueOverrideSet(OverrideFields):
    """Override a minor class for a district, or for the whole city (the city's code)."""

    district_code: Annotated[
        str,
        Field(min_length=6, max_length=6, description="A district's code, or the city's code"),
    ]


class CategoryOverrideSet(CatalogueOverrideSet):
    """Override a category in one district, or in the whole city (the category in the body)."""

    category: Annotated[str, Field(min_length=1, max_length=5)]


class CategoryOverrideRead(BaseModel):
    """An override of a category for a district or the city, with who changed it last."""

    district_code: str
    category: str
    department: str | None
    deadlines: dict[Priority, str]
    register_zh: str | None
    register_en: str | None
    close_zh: str | None
    close_en: str | None
    updated_by: str
    updated_at: datetime


class CategoryOverrideList(BaseModel):
    """Every override, by district then category."""

    items: list[CategoryOverrideRead]


class CategoryOverrideChangeRead(BaseModel):
    """One change of an override: set (with the values it had afterwards) or removed."""

    district_code: str
    category: str
    change: Literal["set", "remove"]
    department: str | None
    deadlines: dict[Priority, str]
    register_zh: str | None
    register_en: str | None
    close_zh: str | None
    close_en: str | None
    changed_by: str
    changed_at: datetime


class CategoryOverrideHistory(BaseModel):
    """A category's override changes, newest first."""

    items: list[CategoryOverrideChangeRead]


class CatalogueClassRead(BaseModel):
    """A minor class as it applies in a territory: the file's values with the city's and
    the district's overrides laid over them; ``overridden`` names the fields that differ
    from the file."""

    code: str
    kind: CaseKind
    major_code: str
    minor_code: str
    name: str
    name_zh: str
    name_en: str
    department: str
    deadlines: dict[Priority, DeadlineRead]
    register_zh: str
    register_en: str
    close_zh: str
    close_en: str
    overridden: list[str]


class CatalogueMajorRead(BaseModel):
    """A major class and its minor classes."""

    kind: CaseKind
    major_code: str
    name: str
    classes: list[CatalogueClassRead]


class CatalogueRead(BaseModel):
    """The catalogue as it applies in a territory (the city's code, or a district's)."""

    version: int
    district_code: str | None
    majors: list[CatalogueMajorRead]
