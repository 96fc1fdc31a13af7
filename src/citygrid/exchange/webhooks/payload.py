"""What a webhook carries: built once per (outbox entry, subscription) through the access
policy of the subscriber's department, so that a webhook never carries a field the
department may not see.

Every field of a payload is a field of ``access/policy.toml`` (or an event fact tied to
one, ``FACT_FIELDS``) and is shown as the department's grant says: clear as stored, masked
through the field's mask, hidden absent. A topic whose gate field (``EVENT_GATES``, or every
field of a dataset) the department may not see at all is not delivered: even the news that
such an event or record exists would tell it something it may not know. A fact of an event
that no rule names is left out (new facts are private until classified here).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from citygrid.access.policy import Level, default_policy
from citygrid.exchange.catalogue import DatasetSpec

ROLE = "department_officer"

#: The person's fields a webhook names, besides the opaque ``ref`` and the ``grid_code``.
SUBJECT_FIELDS = ("name", "id_number", "sex", "birth_date", "status")

#: Per event type, the policy field a department must see (clear or masked) to hear of it.
EVENT_GATES: Mapping[str, str] = {
    "birth": "status",
    "death": "status",
    "move_in": "address",
    "move_out": "address",
    "marriage_status_changed": "marital_status",
    "tenancy_started": "tenancy_status",
    "tenancy_ended": "tenancy_status",
}
DEFAULT_GATE = "status"

#: An event fact of the outbox entry -> the policy field whose class and mask it follows.
#: ``None``: not personal data (grid codes are the territory, shown to anyone told).
FACT_FIELDS: Mapping[str, str | None] = {
    "died_on": "status",
    "was_head": "relation_to_head",
    "unit_id": "address",
    "unit_ids": "address",
    "kind": "address",
    "grid_codes": None,
}
#: Facts that follow another field for some event types.
TENANCY_FACT_FIELDS: Mapping[str, str | None] = {"unit_id": "tenancy_unit"}


@lru_cache(maxsize=64)
def department_levels(department: str) -> Mapping[str, Level]:
    """Every policy field -> how the department's officers see it."""
    policy = default_policy()
    grant = policy.grant(ROLE, department)
    return {
        field: grant.levels.get(field_class, Level.HIDDEN)
        for field, field_class in policy.class_of_field.items()
    }


def plain(value: Any) -> Any:
    """A value as JSON carries it."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


class Shown:
    """Collects the fields of one payload as a department may see them."""

    def __init__(self, department: str) -> None:
        self.levels = department_levels(department)
        self.policy = default_policy()
        self.classes: dict[str, None] = {}
        self.masked: dict[str, None] = {}

    def sees(self, field: str) -> bool:
        """True when the field is shown at all (clear or masked, with a mask that shows)."""
        level = self.levels.get(field, Level.HIDDEN)
        if level is Level.HIDDEN:
            return False
        return level is Level.CLEAR or self.policy.masks.get(field) is not None

    def put(self, target: dict[str, Any], name: str, field: str | None, value: Any) -> None:
        """Add ``name`` to ``target`` as ``field`` is shown (absent when hidden)."""
        if field is None:
            target[name] = plain(value)
            return
        if not self.sees(field):
            return
        value = plain(value)
        if value is not None and self.levels[field] is Level.MASKED:
            masked = (
                [self.policy.mask(field, item) for item in value]
                if isinstance(value, list)
                else self.policy.mask(field, value)
            )
            if masked != value:
                self.masked[name] = None
            value = masked
        target[name] = value
        self.classes[self.policy.class_of_field[field]] = None


@dataclass(frozen=True)
class Built:
    """A payload and the field classes of personal data it carries."""

    body: dict[str, Any]
    field_classes: tuple[str, ...]


def gate_open(department: str, *, event_type: str | None, dataset: DatasetSpec | None) -> bool:
    """Whether the department may hear of this topic at all."""
    shown = Shown(department)
    if dataset is not None:
        return any(shown.sees(field.mask_as) for field in dataset.fields)
    return shown.sees(EVENT_GATES.get(event_type or "", DEFAULT_GATE))


def _subject(shown: Shown, person: Any) -> dict[str, Any]:
    subject: dict[str, Any] = {"ref": person.ref, "grid_code": person.grid_code}
    for field in SUBJECT_FIELDS:
        shown.put(subject, field, field, getattr(person, field))
    return subject


def event_payload(
    department: str, *, payload: Mapping[str, Any], person: Any, topic: str
) -> Built | None:
    """The body of a life event's webhook for a department; None when it may not hear of it."""
    event_type = str(payload.get("type") or topic)
    if not gate_open(department, event_type=event_type, dataset=None):
        return None
    shown = Shown(department)
    subject = _subject(shown, person)
    data: dict[str, Any] = {}
    tenancy = event_type.startswith("tenancy_")
    for name, value in payload.items():
        rules = TENANCY_FACT_FIELDS if tenancy and name in TENANCY_FACT_FIELDS else FACT_FIELDS
        if name in rules:
            shown.put(data, name, rules[name], value)
    if event_type == "marriage_status_changed":
        shown.put(data, "marital_status", "marital_status", person.marital_status)
    body = {
        "topic": topic,
        "event": {
            "id": payload.get("event_id"),
            "type": event_type,
            "occurred_at": payload.get("occurred_at"),
        },
        "subject": subject,
        "data": data,
        "masked": list(shown.masked),
    }
    return Built(body, tuple(shown.classes))


def dataset_payload(
    department: str, *, spec: DatasetSpec, person: Any, records: Sequence[Any]
) -> Built | None:
    """The body of a dataset change's webhook: the person's records as the department may see
    them; None when it may see none of the dataset's fields."""
    if not gate_open(department, event_type=None, dataset=spec):
        return None
    shown = Shown(department)
    subject = _subject(shown, person)
    rows = []
    for record in records:
        row: dict[str, Any] = {}
        for field in spec.fields:
            shown.put(row, field.name, field.mask_as, getattr(record, field.name))
        rows.append(row)
    body = {
        "topic": spec.slug,
        "dataset": spec.slug,
        "subject": subject,
        "data": {"records": rows},
        "masked": list(shown.masked),
    }
    return Built(body, tuple(shown.classes))
