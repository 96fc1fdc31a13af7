"""What a webhook carries: the shape of its body. What goes into it is decided by the access
gateway (``gateway.notification_views``): the subscriber department's grant for the purpose
``life-event-notification`` shows each field clear, masked or not at all, the subscription's
territory keeps out people and rows elsewhere, and the telling is logged as it is decided.

This module says which facts a message holds and which policy field each follows. Every
field of a payload is a field of ``access/policy.toml`` (or an event fact tied to one,
``FACT_FIELDS``). A topic whose gate field (``EVENT_GATES``, or every field of a dataset) the
department may not see at all is not delivered: even the news that such an event or record
exists would tell it something it may not know. A fact of an event that no rule names is
left out (new facts are private until classified here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from citygrid.access.gateway import Fact, Notification
from citygrid.exchange.catalogue import DatasetSpec

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
#: Person fields an event type carries among its facts (a marriage: the new status).
PERSON_FACTS: Mapping[str, tuple[str, ...]] = {"marriage_status_changed": ("marital_status",)}


def event_type_of(payload: Mapping[str, Any], topic: str) -> str:
    """The life event type of an outbox entry's payload."""
    return str(payload.get("type") or topic)


def event_gate(event_type: str) -> str:
    """The policy field a department must see to hear of an event type at all."""
    return EVENT_GATES.get(event_type, DEFAULT_GATE)


def dataset_gates(spec: DatasetSpec) -> tuple[str, ...]:
    """The policy fields of a dataset: a department seeing none of them never hears of it."""
    return tuple(dict.fromkeys(field.mask_as for field in spec.fields))


def event_facts(event_type: str, payload: Mapping[str, Any]) -> list[Fact]:
    """The facts of a life event's outbox payload that a message may carry, each with the
    policy field it follows (the rest are left out)."""
    tenancy = event_type.startswith("tenancy_")
    facts = []
    for name, value in payload.items():
        rules = TENANCY_FACT_FIELDS if tenancy and name in TENANCY_FACT_FIELDS else FACT_FIELDS
        if name in rules:
            facts.append(Fact(name, rules[name], value))
    return facts


def subject_fields(event_type: str | None) -> tuple[str, ...]:
    """The person's fields to ask the gateway for: the subject's, and those the event type
    carries among its facts."""
    return SUBJECT_FIELDS + PERSON_FACTS.get(event_type or "", ())


def event_body(
    told: Notification, *, event_type: str, payload: Mapping[str, Any], topic: str
) -> dict[str, Any]:
    """The body of a life event's webhook, from what the gateway let the department see."""
    subject = dict(told.subject)
    data = dict(told.facts)
    for name in PERSON_FACTS.get(event_type, ()):
        if name in subject:
            data[name] = subject.pop(name)
    return {
        "topic": topic,
        "event": {
            "id": payload.get("event_id"),
            "type": event_type,
            "occurred_at": payload.get("occurred_at"),
        },
        "subject": subject,
        "data": data,
        "masked": list(told.masked),
    }


def dataset_body(told: Notification, *, spec: DatasetSpec) -> dict[str, Any]:
    """The body of a dataset change's webhook: the person's records as the department may
    see them ("this person's records changed; here they are now")."""
    return {
        "topic": spec.slug,
        "dataset": spec.slug,
        "subject": dict(told.subject),
        "data": {"records": list(told.records or ())},
        "masked": list(told.masked),
    }
