"""The exchange catalogue: member departments, datasets and life event types, read from
``catalogue.toml`` and checked against the access policy's field classes and the event
schemas, so that the file cannot promise what the code does not hold."""

from __future__ import annotations

import enum
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from citygrid.access.policy import Policy, default_policy
from citygrid.exchange.events import EVENT_MODELS

CATALOGUE_PATH = Path(__file__).resolve().parent / "catalogue.toml"

FIELD_TYPES = frozenset({"decimal", "enum", "date", "bool", "unit"})


class Classification(enum.StrEnum):
    """How widely a dataset may be shared (national rules for government data)."""

    OPEN = "open"  # 开放
    SHARED = "shared"  # 无条件共享
    CONDITIONAL = "conditional"  # 有条件共享
    CONFIDENTIAL = "confidential"  # 不予共享


class CatalogueError(ValueError):
    """The catalogue file breaks one of its rules; the message names the key."""


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """A member department as the catalogue file lists it."""

    slug: str
    name_zh: str
    name_en: str
    contact: str


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A field of a dataset: its type, its field class and the policy field whose mask
    applies to it."""

    name: str
    type: str
    field_class: str
    mask_as: str
    name_zh: str
    name_en: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """A department-held dataset."""

    slug: str
    owner: str
    name_zh: str
    name_en: str
    classification: Classification
    frequency: str
    max_age_days: int
    fields: tuple[FieldSpec, ...]

    @property
    def field_classes(self) -> tuple[str, ...]:
        """The field classes of the dataset's fields, each once, in field order."""
        return tuple(dict.fromkeys(field.field_class for field in self.fields))


@dataclass(frozen=True, slots=True)
class EventTypeSpec:
    """A life event type and the department that owns (alone may publish) it."""

    type: str
    owner: str
    name_zh: str
    name_en: str

    @property
    def topic(self) -> str:
        """The outbox topic of an applied event of this type."""
        return f"life_event.{self.type}"


@dataclass(frozen=True, slots=True)
class Catalogue:
    """The whole catalogue file, checked."""

    version: int
    members: tuple[MemberSpec, ...]
    datasets: dict[str, DatasetSpec]
    events: dict[str, EventTypeSpec]

    def dataset(self, slug: str) -> DatasetSpec | None:
        """The dataset with this slug, if any."""
        return self.datasets.get(slug)

    def event_type(self, type_: str) -> EventTypeSpec | None:
        """The event type with this name, if any."""
        return self.events.get(type_)


def _text(where: str, spec: dict[str, Any], key: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}.{key}: required text")
    return value


def parse_catalogue(document: dict[str, Any], policy: Policy | None = None) -> Catalogue:
    """Check a parsed catalogue document against the policy and the event schemas."""
    policy = policy or default_policy()
    members = tuple(
        MemberSpec(
            slug=slug,
            name_zh=_text(f"members.{slug}", spec, "name_zh"),
            name_en=_text(f"members.{slug}", spec, "name_en"),
            contact=str(spec.get("contact", "")),
        )
        for slug, spec in (document.get("members") or {}).items()
    )
    member_slugs = {member.slug for member in members}
    frequencies: dict[str, int] = document.get("frequencies") or {}
    datasets: dict[str, DatasetSpec] = {}
    for slug, spec in (document.get("datasets") or {}).items():
        where = f"datasets.{slug}"
        owner = _text(where, spec, "owner")
        if owner not in member_slugs:
            raise CatalogueError(f"{where}.owner: {owner} is not a member")
        try:
            classification = Classification(spec.get("classification"))
        except ValueError:
            raise CatalogueError(f"{where}.classification: one of {list(Classification)}") from None
        frequency = _text(where, spec, "frequency")
        if frequency not in frequencies:
            raise CatalogueError(f"{where}.frequency: not in [frequencies]")
        fields: list[FieldSpec] = []
        for position, raw in enumerate(spec.get("fields") or (), start=1):
            field_where = f"{where}.fields[{position}]"
            field = FieldSpec(
                name=_text(field_where, raw, "name"),
                type=_text(field_where, raw, "type"),
                field_class=_text(field_where, raw, "field_class"),
                mask_as=_text(field_where, raw, "mask_as"),
                name_zh=_text(field_where, raw, "name_zh"),
                name_en=_text(field_where, raw, "name_en"),
                values=tuple(raw.get("values") or ()),
            )
            if field.type not in FIELD_TYPES:
                raise CatalogueError(f"{field_where}.type: one of {sorted(FIELD_TYPES)}")
            if field.type == "enum" and not field.values:
                raise CatalogueError(f"{field_where}.values: an enum needs its values")
            if field.field_class not in policy.field_classes:
                raise CatalogueError(f"{field_where}.field_class: not a class of the policy")
            if policy.class_of_field.get(field.mask_as) != field.field_class:
                raise CatalogueError(
                    f"{field_where}.mask_as: must be a policy field of class {field.field_class}"
                )
            fields.append(field)
        if not fields:
            raise CatalogueError(f"{where}.fields: none defined")
        datasets[slug] = DatasetSpec(
            slug=slug,
            owner=owner,
            name_zh=_text(where, spec, "name_zh"),
            name_en=_text(where, spec, "name_en"),
            classification=classification,
            frequency=frequency,
            max_age_days=int(frequencies[frequency]),
            fields=tuple(fields),
        )
    events: dict[str, EventTypeSpec] = {}
    for type_, spec in (document.get("events") or {}).items():
        where = f"events.{type_}"
        if type_ not in EVENT_MODELS:
            raise CatalogueError(f"{where}: no schema for this type in exchange/events.py")
        owner = _text(where, spec, "owner")
        if owner not in member_slugs:
            raise CatalogueError(f"{where}.owner: {owner} is not a member")
        events[type_] = EventTypeSpec(
            type=type_,
            owner=owner,
            name_zh=_text(where, spec, "name_zh"),
            name_en=_text(where, spec, "name_en"),
        )
    missing = set(EVENT_MODELS) - set(events)
    if missing:
        raise CatalogueError(f"events: no owner for {sorted(missing)}")
    return Catalogue(
        version=int(document.get("version", 0)),
        members=members,
        datasets=datasets,
        events=events,
    )


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check a catalogue file (the repository's by default)."""
    path = path or CATALOGUE_PATH
    with path.open("rb") as catalogue_file:
        try:
            document = tomllib.load(catalogue_file)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogueError(f"{path.name}: {exc}") from exc
    return parse_catalogue(document)


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The repository's catalogue, read once per process."""
    return load_catalogue()
