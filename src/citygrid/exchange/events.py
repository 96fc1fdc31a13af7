"""Typed life events: one Pydantic class per event type, told apart by ``type``.

Every event carries ``source_event_id`` (the publisher's idempotency key, unique per
department), ``occurred_at`` (when it happened, with a time zone) and the subject's
``id_number``, then its own fields. Dates derived from ``occurred_at`` (a death's ``died_on``,
the first day of a residence) are taken in China Standard Time, whatever zone the event is
written in.

A new event type is a class here (added to ``LifeEvent`` and ``EVENT_MODELS``), an entry in
``catalogue.toml`` naming its owner department, and an ``apply`` rule in ``service.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from citygrid.kit.clock import local_date
from citygrid.kit.errors import ValidationFailed
from citygrid.registry.idnumber import IdNumberError, UsccError, parse_id_number
from citygrid.registry.models import MaritalStatus, ResidenceKind, Sex
from citygrid.registry.schemas import (
    FieldProblem,
    check_ethnicity,
    check_id_number,
    check_person_name,
)

# Clocks of department systems drift; an event a little in the future is still believable.
_CLOCK_SKEW = timedelta(minutes=5)

SourceEventId = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[\x21-\x7e]+$", examples=["PS-2026-000123"])
]
UnitId = Annotated[int, Field(ge=1, description="A housing unit id of the registry")]


class LifeEventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    source_event_id: SourceEventId = Field(
        description="The publisher's id of the event: the idempotency key, unique per department"
    )
    occurred_at: AwareDatetime = Field(description="When it happened, with a time zone")
    id_number: str = Field(description="The subject's resident ID number (18 characters)")

    _id_number = field_validator("id_number")(check_id_number)
    _fingerprint: str | None = PrivateAttr(default=None)

    @field_validator("occurred_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime) -> datetime:
        if value > datetime.now(UTC) + _CLOCK_SKEW:
            raise ValueError("must not be in the future")
        if value.year < 1900:
            raise ValueError("must not be before 1900")
        return value

    @property
    def occurred_on(self) -> date:
        """The local date the event happened on."""
        return local_date(self.occurred_at)

    def facts(self) -> dict[str, Any]:
        """The event's own fields without identifying ones: what the event log keeps."""
        return self.model_dump(
            mode="json",
            exclude={"source_event_id", "occurred_at", "id_number", "type", *_IDENTIFYING},
        )

    def fingerprint(self) -> str:
        """SHA-256 of the event's canonical JSON: the same key with other content is refused.
        Computed once (a batch claims its keys first and checks them again as it applies);
        events are not changed after parsing."""
        if self._fingerprint is None:
            document = self.model_dump(mode="json")
            document["occurred_at"] = self.occurred_at.astimezone(UTC).isoformat()
            encoded = json.dumps(
                document, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
            self._fingerprint = hashlib.sha256(encoded.encode()).hexdigest()
        return self._fingerprint


# Fields that identify a person: kept out of the event log's ``facts``.
_IDENTIFYING = frozenset({"name", "parent_id_number"})


class BirthEvent(LifeEventBase):
    """A child was born and registered: the child joins the registry, in the household of the
    parent named by ``parent_id_number``. ``id_number`` is the child's new ID number; its
    birth date must be the local date of ``occurred_at``."""

    type: Literal["birth"]
    name: str = Field(description="The child's name")
    ethnicity: str = Field(description="GB 3304 code or Chinese name of the ethnic group")
    sex: Sex | None = Field(default=None, description="Taken from the ID number when omitted")
    parent_id_number: str = Field(description="ID number of a registered parent")

    _name = field_validator("name")(check_person_name)
    _ethnicity = field_validator("ethnicity")(check_ethnicity)
    _parent = field_validator("parent_id_number")(check_id_number)

    @model_validator(mode="after")
    def _consistent(self) -> BirthEvent:
        parsed = parse_id_number(self.id_number)
        if parsed.birth_date != self.occurred_on:
            raise FieldProblem("occurred_at", "must be the birth date in the ID number")
        if self.sex is not None and self.sex.value != parsed.sex:
            raise FieldProblem("sex", "disagrees with the ID number")
        if self.parent_id_number == self.id_number:
            raise FieldProblem("parent_id_number", "must be another person")
        return self


class DeathEvent(LifeEventBase):
    """A person died: marked deceased on the local date of ``occurred_at``; the allowance,
    pension, tenancies, household and grid worker are told."""

    type: Literal["death"]


MoveKind = Literal["registered_address", "actual_residence"]


class MoveInEvent(LifeEventBase):
    """A person moved into a housing unit: a residence of ``kind`` opens there from the local
    date of ``occurred_at``; an open residence of the same kind elsewhere closes that day."""

    type: Literal["move_in"]
    unit_id: UnitId
    kind: MoveKind = ResidenceKind.ACTUAL_RESIDENCE.value


class MoveOutEvent(LifeEventBase):
    """A person moved out: open residences of ``kind`` (at ``unit_id`` when given) close on the
    local date of ``occurred_at``."""

    type: Literal["move_out"]
    unit_id: UnitId | None = None
    kind: MoveKind = ResidenceKind.ACTUAL_RESIDENCE.value


class MarriageStatusChangedEvent(LifeEventBase):
    """A person's marital status changed (married, divorced, widowed)."""

    type: Literal["marriage_status_changed"]
    marital_status: MaritalStatus


class TenancyStartedEvent(LifeEventBase):
    """A tenancy of a housing unit was registered, from the local date of ``occurred_at``."""

    type: Literal["tenancy_started"]
    unit_id: UnitId
    until: date | None = Field(default=None, description="The agreed end, if known")

    @model_validator(mode="after")
    def _period(self) -> TenancyStartedEvent:
        if self.until is not None and self.until < self.occurred_on:
            raise FieldProblem("until", "before the start of the tenancy")
        return self


class TenancyEndedEvent(LifeEventBase):
    """A tenancy of a housing unit ended on the local date of ``occurred_at``."""

    type: Literal["tenancy_ended"]
    unit_id: UnitId


LifeEvent = Annotated[
    BirthEvent
    | DeathEvent
    | MoveInEvent
    | MoveOutEvent
    | MarriageStatusChangedEvent
    | TenancyStartedEvent
    | TenancyEndedEvent,
    Field(discriminator="type"),
]
"""Any life event, told apart by ``type``."""

EVENT_MODELS: dict[str, type[LifeEventBase]] = {
    "birth": BirthEvent,
    "death": DeathEvent,
    "move_in": MoveInEvent,
    "move_out": MoveOutEvent,
    "marriage_status_changed": MarriageStatusChangedEvent,
    "tenancy_started": TenancyStartedEvent,
    "tenancy_ended": TenancyEndedEvent,
}
"""Event type -> its schema."""

_ADAPTER: TypeAdapter[Any] = TypeAdapter(LifeEvent)


def _problems(exc: ValidationError) -> list[dict[str, str]]:
    """``{field, reason}`` per error, the union's tag dropped from the location and the
    rejected value never echoed."""
    details: list[dict[str, str]] = []
    for error in exc.errors(include_url=False, include_input=False):
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblem | IdNumberError | UsccError):
            details.append({"field": cause.field, "reason": cause.reason})
            continue
        location = [str(part) for part in error.get("loc", ())]
        if location and location[0] in EVENT_MODELS:
            location = location[1:]
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            reason = "must be one of: " + ", ".join(EVENT_MODELS)
            details.append({"field": "type", "reason": reason})
            continue
        reason = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        details.append({"field": ".".join(location) or "event", "reason": reason})
    return details


def parse_event(data: Mapping[str, Any] | Any) -> LifeEventBase:
    """Validate a life event; ``ValidationFailed`` names every bad field."""
    if isinstance(data, LifeEventBase):
        return data
    if not isinstance(data, Mapping):
        raise ValidationFailed.one("event", "must be a JSON object")
    try:
        event: LifeEventBase = _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        details = _problems(exc)
        message = "; ".join(f"{detail['field']}: {detail['reason']}" for detail in details)
        raise ValidationFailed(message, details=details) from None
    return event


def _inline(node: Any, definitions: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            return _inline(definitions[reference.removeprefix("#/$defs/")], definitions)
        inlined = {key: _inline(value, definitions) for key, value in node.items()}
        inlined.pop("$defs", None)
        if isinstance(inlined.get("discriminator"), dict):
            # The mapping points into $defs, which inlining removes.
            inlined["discriminator"] = {"propertyName": inlined["discriminator"]["propertyName"]}
        return inlined
    if isinstance(node, list):
        return [_inline(value, definitions) for value in node]
    return node


def life_event_json_schema() -> dict[str, Any]:
    """The JSON schema of ``LifeEvent`` with its definitions inlined (for OpenAPI)."""
    schema = _ADAPTER.json_schema()
    inlined: dict[str, Any] = _inline(schema, schema.get("$defs", {}))
    return inlined
