"""The catalogue of urban component classes: read from ``component_classes.toml``,
validated, and synchronised into the ``component_classes`` table."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from citygrid.registry import repository
from citygrid.registry.schemas import ComponentClassIn

CATALOGUE_PATH = Path(__file__).resolve().parent / "component_classes.toml"


class CatalogueError(ValueError):
    """The catalogue file breaks one of its invariants."""


def parse_component_classes(data: dict[str, Any]) -> list[ComponentClassIn]:
    """Validate the parsed catalogue document and return its classes in code order."""
    majors: dict[str, dict[str, str]] = data.get("majors", {})
    classes: list[ComponentClassIn] = []
    seen_codes: set[str] = set()
    seen_slugs: set[str] = set()
    for position, raw in enumerate(data.get("classes", []), start=1):
        code = str(raw.get("code", ""))
        major_code = code[:2]
        major = majors.get(major_code)
        if major is None:
            raise CatalogueError(f"class #{position}: major {major_code!r} is not in [majors]")
        try:
            item = ComponentClassIn(
                code=code,
                slug=raw.get("slug", ""),
                major_code=major_code,
                major_name_zh=major["name_zh"],
                major_name_en=major["name_en"],
                name_zh=raw.get("name_zh", ""),
                name_en=raw.get("name_en", ""),
                owner_department=raw.get("department", ""),
            )
        except (ValidationError, KeyError) as exc:
            raise CatalogueError(f"class #{position} ({code}): {exc}") from exc
        if item.code in seen_codes:
            raise CatalogueError(f"class code {item.code} appears twice")
        if item.slug in seen_slugs:
            raise CatalogueError(f"class slug {item.slug} appears twice")
        if not item.name_zh or not item.name_en:
            raise CatalogueError(f"class {item.code} needs both names")
        seen_codes.add(item.code)
        seen_slugs.add(item.slug)
        classes.append(item)
    return sorted(classes, key=lambda item: item.code)


@lru_cache(maxsize=1)
def _load_cached() -> tuple[ComponentClassIn, ...]:
    with CATALOGUE_PATH.open("rb") as catalogue_file:
        return tuple(parse_component_classes(tomllib.load(catalogue_file)))


def load_component_classes() -> list[ComponentClassIn]:
    """The validated classes of the catalogue file, in code order."""
    return list(_load_cached())


def component_slugs() -> tuple[str, ...]:
    """The slugs of every catalogue class, in code order."""
    return tuple(item.slug for item in _load_cached())


def sync_component_classes(session: Session) -> int:
    """Upsert the catalogue into the table; returns how many rows were inserted or changed."""
    return repository.upsert_component_classes(session, load_component_classes())
