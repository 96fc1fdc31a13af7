"""The catalogue of case categories: components (部件) and events (事件), read from
``catalogue.toml`` and validated on load.

A category code is the kind's letter and the 4-digit class code: ``C0201`` is the component
class ``0201`` (floor tiles) of the registry, ``E0403`` the event class ``0403`` (illegal
parking). Components take their codes, slugs, names and majors from the registry's
catalogue (``citygrid.registry.catalogue``), which is loaded, not copied: the cases file adds
only what a case needs (criteria, department, deadlines, duplicate radius and window).

The file is the source of truth and changes by reviewed commit; a district may send a
category to another department through ``category_overrides`` (see the service), which
administrators edit at run time.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from citygrid.cases.calendar import WORKDAY_HOURS, add_working_time
from citygrid.cases.models import CaseKind, Priority
from citygrid.kit.i18n import localised
from citygrid.registry.catalogue import load_component_classes
from citygrid.registry.schemas import DEPARTMENT_SLUGS, ComponentClassIn

CATALOGUE_PATH = Path(__file__).resolve().parent / "catalogue.toml"

KIND_LETTERS: dict[CaseKind, str] = {CaseKind.COMPONENT: "C", CaseKind.EVENT: "E"}

CATEGORY_CODE = re.compile(r"^[CE]\d{4}$")
_CLASS_CODE = re.compile(r"^\d{4}$")
_MAJOR_CODE = re.compile(r"^\d{2}$")
_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
_DURATION = re.compile(r"^([1-9]\d*)([hd])$")


class CatalogueError(ValueError):
    """The catalogue file breaks one of its invariants."""


@dataclass(frozen=True, slots=True)
class WorkingDuration:
    """A deadline length: ``amount`` working hours (``"h"``) or working days (``"d"``)."""

    amount: int
    unit: Literal["h", "d"]

    @classmethod
    def parse(cls, text: str) -> WorkingDuration:
        """Read ``"4h"`` or ``"2d"``; ValueError otherwise."""
        match = _DURATION.match(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f"{text!r} is not a positive <n>h or <n>d")
        unit: Literal["h", "d"] = "h" if match.group(2) == "h" else "d"
        return cls(int(match.group(1)), unit)

    @property
    def hours(self) -> float:
        """The length in working hours (a working day is 7.5 hours)."""
        return float(self.amount) if self.unit == "h" else self.amount * WORKDAY_HOURS

    def deadline_from(self, start: datetime) -> datetime:
        """The deadline of a clock started at ``start``."""
        if self.unit == "h":
            return add_working_time(start, hours=self.amount)
        return add_working_time(start, days=self.amount)

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True, slots=True, eq=True)
class Category:
    """A minor class of the catalogue, with everything a case of it needs."""

    code: str
    kind: CaseKind
    major_code: str
    minor_code: str
    slug: str
    name_zh: str
    name_en: str
    major_name_zh: str
    major_name_en: str
    department: str
    register_zh: str
    register_en: str
    close_zh: str
    close_en: str
    deadlines: Mapping[Priority, WorkingDuration]
    duplicate_radius_m: int
    duplicate_window_h: int

    @property
    def name(self) -> str:
        """The name in the current language."""
        return localised(self.name_zh, self.name_en)

    def deadline(self, priority: Priority) -> WorkingDuration:
        """The deadline length for a priority."""
        return self.deadlines[priority]


class Catalogue:
    """The validated categories, by code, in code order."""

    def __init__(self, categories: Sequence[Category], version: int) -> None:
        self.version = version
        self._by_code = {category.code: category for category in categories}

    def get(self, code: str) -> Category | None:
        """The category of a code, or None."""
        return self._by_code.get(code)

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    def __iter__(self) -> Iterator[Category]:
        return iter(self._by_code.values())

    def __len__(self) -> int:
        return len(self._by_code)


def category_code(kind: CaseKind, class_code: str) -> str:
    """The category code of a class: ``C0201``, ``E0101``."""
    return KIND_LETTERS[kind] + class_code


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise CatalogueError(f"{where}: {key} is missing or empty")
    return value.strip()


def _positive_int(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise CatalogueError(f"{where}: {key} must be a positive integer")
    return value


def _department(value: Any, where: str) -> str:
    if value not in DEPARTMENT_SLUGS:
        raise CatalogueError(f"{where}: unknown department {value!r}")
    return str(value)


def _deadlines(raw: Mapping[str, Any], where: str) -> dict[Priority, WorkingDuration]:
    table = raw.get("deadline")
    if not isinstance(table, dict):
        raise CatalogueError(f"{where}: deadline must be a table of urgent, high, normal")
    unknown = set(table) - {priority.value for priority in Priority}
    if unknown:
        raise CatalogueError(f"{where}: unknown priorities {sorted(unknown)} in deadline")
    deadlines: dict[Priority, WorkingDuration] = {}
    for priority in Priority:
        if priority.value not in table:
            raise CatalogueError(f"{where}: deadline.{priority.value} is missing")
        try:
            deadlines[priority] = WorkingDuration.parse(table[priority.value])
        except ValueError as exc:
            raise CatalogueError(f"{where}: deadline.{priority.value}: {exc}") from exc
    urgent, high, normal = (deadlines[p].hours for p in Priority)
    if not urgent <= high <= normal:
        raise CatalogueError(f"{where}: deadlines must not shrink from urgent to high to normal")
    return deadlines


def _category(
    raw: Mapping[str, Any],
    *,
    where: str,
    kind: CaseKind,
    class_code: str,
    slug: str,
    names: tuple[str, str],
    major: tuple[str, str],
    department: str,
) -> Category:
    return Category(
        code=category_code(kind, class_code),
        kind=kind,
        major_code=class_code[:2],
        minor_code=class_code[2:],
        slug=slug,
        name_zh=names[0],
        name_en=names[1],
        major_name_zh=major[0],
        major_name_en=major[1],
        department=department,
        register_zh=_text(raw, "register_zh", where),
        register_en=_text(raw, "register_en", where),
        close_zh=_text(raw, "close_zh", where),
        close_en=_text(raw, "close_en", where),
        deadlines=_deadlines(raw, where),
        duplicate_radius_m=_positive_int(raw, "duplicate_radius_m", where),
        duplicate_window_h=_positive_int(raw, "duplicate_window_h", where),
    )


def _components(
    entries: list[Any], component_classes: Sequence[ComponentClassIn]
) -> list[Category]:
    registry = {item.code: item for item in component_classes}
    categories: list[Category] = []
    for position, raw in enumerate(entries, start=1):
        code = str(raw.get("code", "")) if isinstance(raw, dict) else ""
        where = f"components #{position} ({code or '?'})"
        item = registry.get(code)
        if item is None:
            raise CatalogueError(f"{where}: not a class of the registry's component catalogue")
        department = _department(raw.get("department", item.owner_department), where)
        categories.append(
            _category(
                raw,
                where=where,
                kind=CaseKind.COMPONENT,
                class_code=code,
                slug=item.slug,
                names=(item.name_zh, item.name_en),
                major=(item.major_name_zh, item.major_name_en),
                department=department,
            )
        )
    covered = {category.major_code + category.minor_code for category in categories}
    missing = sorted(set(registry) - covered)
    if missing:
        raise CatalogueError(f"components: registry classes without a case entry: {missing}")
    return categories


def _events(entries: list[Any], majors: Mapping[str, tuple[str, str]]) -> list[Category]:
    categories: list[Category] = []
    for position, raw in enumerate(entries, start=1):
        if not isinstance(raw, dict):
            raise CatalogueError(f"events #{position}: must be a table")
        code = str(raw.get("code", ""))
        where = f"events #{position} ({code or '?'})"
        if not _CLASS_CODE.match(code):
            raise CatalogueError(f"{where}: code must be 4 digits (major + minor)")
        major = majors.get(code[:2])
        if major is None:
            raise CatalogueError(f"{where}: major {code[:2]} is not in [event_majors]")
        slug = _text(raw, "slug", where)
        if not _SLUG.match(slug):
            raise CatalogueError(f"{where}: slug must be snake_case")
        categories.append(
            _category(
                raw,
                where=where,
                kind=CaseKind.EVENT,
                class_code=code,
                slug=slug,
                names=(_text(raw, "name_zh", where), _text(raw, "name_en", where)),
                major=major,
                department=_department(raw.get("department"), where),
            )
        )
    return categories


def _event_majors(document: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    majors: dict[str, tuple[str, str]] = {}
    for code, raw in (document.get("event_majors") or {}).items():
        where = f"event_majors.{code}"
        if not _MAJOR_CODE.match(code) or not isinstance(raw, dict):
            raise CatalogueError(f"{where}: a major is a 2-digit code with name_zh and name_en")
        majors[code] = (_text(raw, "name_zh", where), _text(raw, "name_en", where))
    return majors


def parse_catalogue(
    document: Mapping[str, Any], component_classes: Sequence[ComponentClassIn]
) -> Catalogue:
    """Validate a parsed catalogue document against the registry's component classes."""
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CatalogueError("version must be a positive integer")
    components = document.get("components") or []
    events = document.get("events") or []
    if not isinstance(components, list) or not isinstance(events, list):
        raise CatalogueError("components and events must be arrays of tables")
    categories = _components(components, component_classes) + _events(
        events, _event_majors(document)
    )
    seen_codes: set[str] = set()
    seen_slugs: set[str] = set()
    for category in categories:
        if category.code in seen_codes:
            raise CatalogueError(f"category code {category.code} appears twice")
        if category.slug in seen_slugs:
            raise CatalogueError(f"category slug {category.slug} appears twice")
        seen_codes.add(category.code)
        seen_slugs.add(category.slug)
    return Catalogue(sorted(categories, key=lambda category: category.code), version)


def read_catalogue(path: Path = CATALOGUE_PATH) -> Catalogue:
    """Read and validate a catalogue file (CatalogueError naming the entry on a bad one)."""
    with path.open("rb") as catalogue_file:
        document = tomllib.load(catalogue_file)
    return parse_catalogue(document, load_component_classes())


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    """The process's catalogue, read from ``catalogue.toml`` once."""
    return read_catalogue()
