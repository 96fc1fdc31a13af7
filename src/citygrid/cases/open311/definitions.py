"""The catalogue as Open311 services: each minor class is a service whose ``service_code`` is
the category code, with its attributes (``priority`` for every service, plus the
``[[open311_attributes]]`` the catalogue file defines for a category).

The attribute definitions are validated against the catalogue when first loaded; a broken
entry raises ``CatalogueError`` naming it, as the rest of the catalogue does.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from citygrid.cases.catalogue import CATALOGUE_PATH, CatalogueError, Category, load_catalogue
from citygrid.cases.models import Priority
from citygrid.kit.i18n import _, localised

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

PRIORITY_ATTRIBUTE = "priority"


class Datatype(enum.StrEnum):
    """The attribute datatypes of GeoReport v2."""

    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"
    TEXT = "text"
    SINGLEVALUELIST = "singlevaluelist"
    MULTIVALUELIST = "multivaluelist"


LIST_TYPES = frozenset({Datatype.SINGLEVALUELIST, Datatype.MULTIVALUELIST})


@dataclass(frozen=True, slots=True)
class AttributeValue:
    """One choice of a list attribute."""

    key: str
    name_zh: str
    name_en: str

    @property
    def name(self) -> str:
        """The name in the current language."""
        return localised(self.name_zh, self.name_en)


@dataclass(frozen=True, slots=True)
class Attribute:
    """A question of a service definition."""

    code: str
    datatype: Datatype
    required: bool
    description_zh: str
    description_en: str
    values: tuple[AttributeValue, ...] = ()

    @property
    def description(self) -> str:
        """The question in the current language."""
        return localised(self.description_zh, self.description_en)

    def accepted_keys(self) -> frozenset[str]:
        """The keys a list attribute accepts."""
        return frozenset(value.key for value in self.values)


def _priority_attribute() -> Attribute:
    # Names in both languages: the request's language picks one when it is shown.
    names = {
        Priority.URGENT: ("紧急", "Urgent"),
        Priority.HIGH: ("较急", "High"),
        Priority.NORMAL: ("一般", "Normal"),
    }
    return Attribute(
        code=PRIORITY_ATTRIBUTE,
        datatype=Datatype.SINGLEVALUELIST,
        required=False,
        description_zh="有多紧急？（默认：一般）",
        description_en="How urgent is it? (default: normal)",
        values=tuple(AttributeValue(p.value, *names[p]) for p in Priority),
    )


PRIORITY = _priority_attribute()


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}: {key} is missing or empty")
    return value.strip()


def _values(raw: Mapping[str, Any], datatype: Datatype, where: str) -> tuple[AttributeValue, ...]:
    entries = raw.get("values")
    if datatype not in LIST_TYPES:
        if entries is not None:
            raise CatalogueError(f"{where}: values are only for the list datatypes")
        return ()
    if not isinstance(entries, list) or not entries:
        raise CatalogueError(f"{where}: a list attribute needs values")
    values = []
    for position, entry in enumerate(entries, start=1):
        spot = f"{where} value #{position}"
        if not isinstance(entry, dict):
            raise CatalogueError(f"{spot}: must be a table of key, name_zh, name_en")
        key = _text(entry, "key", spot)
        if not _CODE.match(key):
            raise CatalogueError(f"{spot}: key must be snake_case")
        values.append(
            AttributeValue(key, _text(entry, "name_zh", spot), _text(entry, "name_en", spot))
        )
    if len({value.key for value in values}) != len(values):
        raise CatalogueError(f"{where}: a value key appears twice")
    return tuple(values)


def parse_attributes(
    entries: Sequence[Any], categories: Container[str]
) -> dict[str, tuple[Attribute, ...]]:
    """Validate ``[[open311_attributes]]`` entries; category code -> its attributes in order."""
    by_category: dict[str, list[Attribute]] = {}
    for position, raw in enumerate(entries, start=1):
        if not isinstance(raw, dict):
            raise CatalogueError(f"open311_attributes #{position}: must be a table")
        category = str(raw.get("category", ""))
        code = str(raw.get("code", ""))
        where = f"open311_attributes #{position} ({category or '?'}/{code or '?'})"
        if category not in categories:
            raise CatalogueError(f"{where}: no category has this code")
        if not _CODE.match(code) or code == PRIORITY_ATTRIBUTE:
            raise CatalogueError(f"{where}: code must be snake_case and not {PRIORITY_ATTRIBUTE}")
        try:
            datatype = Datatype(str(raw.get("datatype")))
        except ValueError:
            raise CatalogueError(
                f"{where}: datatype must be one of {', '.join(d.value for d in Datatype)}"
            ) from None
        required = raw.get("required", False)
        if not isinstance(required, bool):
            raise CatalogueError(f"{where}: required must be true or false")
        attributes = by_category.setdefault(category, [])
        if any(attribute.code == code for attribute in attributes):
            raise CatalogueError(f"{where}: the category has this attribute twice")
        attributes.append(
            Attribute(
                code=code,
                datatype=datatype,
                required=required,
                description_zh=_text(raw, "description_zh", where),
                description_en=_text(raw, "description_en", where),
                values=_values(raw, datatype, where),
            )
        )
    return {category: tuple(attributes) for category, attributes in by_category.items()}


def read_attributes(path: Path = CATALOGUE_PATH) -> dict[str, tuple[Attribute, ...]]:
    """Read and validate the Open311 attributes of a catalogue file."""
    with path.open("rb") as catalogue_file:
        document = tomllib.load(catalogue_file)
    entries = document.get("open311_attributes") or []
    if not isinstance(entries, list):
        raise CatalogueError("open311_attributes must be an array of tables")
    return parse_attributes(entries, load_catalogue())


@lru_cache(maxsize=1)
def category_attributes() -> dict[str, tuple[Attribute, ...]]:
    """The process's Open311 attributes by category code, read once."""
    return read_attributes()


def attributes_of(category: Category) -> tuple[Attribute, ...]:
    """A service's attributes: priority first, then the category's own."""
    return (PRIORITY, *category_attributes().get(category.code, ()))


def service_category(service_code: str) -> Category | None:
    """The category a service code names, or None."""
    return load_catalogue().get(service_code)


def keywords(category: Category) -> str:
    """Words a client may search the service by: both names, the slug's words, the kind."""
    words = [category.name_zh, category.name_en, *category.slug.split("_")]
    words.append(_("component") if category.kind.value == "component" else _("event"))
    unique: list[str] = []
    for word in words:
        if word and word.lower() not in (w.lower() for w in unique):
            unique.append(word)
    return ", ".join(unique)
