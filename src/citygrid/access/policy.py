"""The access policy: role x field class -> level, masks per field, purposes and their legal
basis, and which purposes allow revealing what. Loaded from ``policy.toml`` (versioned in the
repository) and compiled into dictionaries so one decision is a few hash lookups.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any

POLICY_PATH = Path(__file__).resolve().parent / "policy.toml"


class Level(enum.StrEnum):
    """How a field class is shown to a role."""

    CLEAR = "clear"
    MASKED = "masked"
    HIDDEN = "hidden"


class LegalBasis(enum.StrEnum):
    """Why a purpose may read personal data."""

    STATUTORY = "statutory"  # a duty in law: no consent needed, still logged and shown
    CONSENT = "consent"  # the resident's active consent is required


class PolicyError(ValueError):
    """The policy file is inconsistent; the message names the key."""


@dataclass(frozen=True, slots=True)
class Purpose:
    """A purpose of use from the catalogue."""

    code: str
    name_zh: str
    name_en: str
    legal_basis: LegalBasis
    law: str


Mask = Callable[[Any], Any]


def _show_first(n: int) -> Mask:
    def mask(value: Any) -> Any:
        text = str(value)
        return text[:n] + "*" * max(len(text) - n, 0)

    return mask


def _show_last(n: int) -> Mask:
    def mask(value: Any) -> Any:
        text = str(value)
        return "*" * max(len(text) - n, 0) + text[-n:] if n else "*" * len(text)

    return mask


def _show_first_last(first: int, last: int) -> Mask:
    def mask(value: Any) -> Any:
        text = str(value)
        if len(text) <= first + last:
            return "*" * len(text)
        return text[:first] + "*" * (len(text) - first - last) + text[len(text) - last :]

    return mask


def _year_only(value: Any) -> Any:
    if isinstance(value, date):
        return str(value.year)
    return str(value)[:4]


def _redact(_value: Any) -> Any:
    # A fixed width: redaction must not leak the length of the value.
    return "***"


def _none(value: Any) -> Any:
    return value


HIDDEN_MASK = "hidden"


def _compile_mask(field: str, spec: Mapping[str, Any]) -> Mask | None:
    kind = spec.get("kind")
    try:
        if kind == "none":
            return _none
        if kind == "show_first":
            return _show_first(int(spec["n"]))
        if kind == "show_last":
            return _show_last(int(spec["n"]))
        if kind == "show_first_last":
            return _show_first_last(int(spec["first"]), int(spec["last"]))
        if kind == "redact":
            return _redact
        if kind == "year_only":
            return _year_only
        if kind == HIDDEN_MASK:
            return None
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"masks.{field}: incomplete mask {spec!r}") from exc
    raise PolicyError(f"masks.{field}: unknown mask kind {kind!r}")


@dataclass(frozen=True, slots=True)
class Grant:
    """What one role (or department) may see: levels, usable purposes, revealable classes."""

    levels: Mapping[str, Level]
    purposes: frozenset[str]
    reveal: frozenset[tuple[str, str]]  # (field class, purpose)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one (actor, grid, field class, purpose) question."""

    in_scope: bool
    level: Level
    purpose_allowed: bool
    may_reveal: bool
    needs_consent: bool


class Policy:
    """The compiled policy. Build with ``load_policy()``."""

    def __init__(self, document: Mapping[str, Any], source: str = "policy") -> None:
        self.source = source
        self.version = int(document.get("version", 0))
        classes = document.get("field_classes") or {}
        if not classes:
            raise PolicyError("field_classes: none defined")
        self.field_classes: dict[str, tuple[str, ...]] = {
            name: tuple(fields) for name, fields in classes.items()
        }
        self.class_of_field: dict[str, str] = {}
        for class_name, fields in self.field_classes.items():
            for field in fields:
                if field in self.class_of_field:
                    raise PolicyError(f"field_classes.{class_name}: {field} is in two classes")
                self.class_of_field[field] = class_name
        masks = document.get("masks") or {}
        self.masks: dict[str, Mask | None] = {}
        for field in self.class_of_field:
            if field not in masks:
                raise PolicyError(f"masks.{field}: no mask for this field")
            self.masks[field] = _compile_mask(field, masks[field])
        self.purposes: dict[str, Purpose] = {}
        for code, spec in (document.get("purposes") or {}).items():
            try:
                basis = LegalBasis(spec["legal_basis"])
            except (KeyError, ValueError) as exc:
                raise PolicyError(f"purposes.{code}.legal_basis: statutory or consent") from exc
            self.purposes[code] = Purpose(
                code,
                spec.get("name_zh", code),
                spec.get("name_en", code),
                basis,
                spec.get("law", ""),
            )
        self.roles = {
            name: self._grant(f"roles.{name}", spec)
            for name, spec in (document.get("roles") or {}).items()
        }
        self.departments = {
            name: self._grant(f"departments.{name}", spec)
            for name, spec in (document.get("departments") or {}).items()
        }

    def _grant(self, where: str, spec: Mapping[str, Any]) -> Grant:
        levels_spec = spec.get("levels") or {}
        levels: dict[str, Level] = {}
        for class_name in self.field_classes:
            if class_name not in levels_spec:
                raise PolicyError(f"{where}.levels.{class_name}: missing")
            try:
                levels[class_name] = Level(levels_spec[class_name])
            except ValueError as exc:
                raise PolicyError(f"{where}.levels.{class_name}: clear, masked or hidden") from exc
        unknown = set(levels_spec) - set(self.field_classes)
        if unknown:
            raise PolicyError(f"{where}.levels: unknown field classes {sorted(unknown)}")
        purposes = frozenset(spec.get("purposes") or ())
        for purpose in purposes:
            if purpose not in self.purposes:
                raise PolicyError(f"{where}.purposes: unknown purpose {purpose}")
        reveal: set[tuple[str, str]] = set()
        for class_name, reveal_purposes in (spec.get("reveal") or {}).items():
            if class_name not in self.field_classes:
                raise PolicyError(f"{where}.reveal.{class_name}: unknown field class")
            if levels[class_name] is Level.HIDDEN:
                raise PolicyError(f"{where}.reveal.{class_name}: a hidden class cannot be revealed")
            for purpose in reveal_purposes:
                if purpose not in purposes:
                    raise PolicyError(f"{where}.reveal.{class_name}: {purpose} not in purposes")
                reveal.add((class_name, purpose))
        return Grant(levels=levels, purposes=purposes, reveal=frozenset(reveal))

    def grant(self, role: str, department: str | None = None) -> Grant:
        """The grant of a role, or of the department for department officers."""
        if department is not None and role == "department_officer":
            found = self.departments.get(department)
            if found is not None:
                return found
        try:
            return self.roles[role]
        except KeyError:
            raise PolicyError(f"roles.{role}: no such role in the policy") from None

    def decide(
        self,
        *,
        role: str,
        department: str | None,
        scopes: tuple[str, ...],
        grid_code: str,
        field_class: str,
        purpose: str,
    ) -> Decision:
        """One decision: scope, level, whether the purpose may be used and may reveal."""
        grant = self.grant(role, department)
        in_scope = any(grid_code.startswith(prefix) for prefix in scopes)
        level = grant.levels.get(field_class, Level.HIDDEN)
        found = self.purposes.get(purpose)
        allowed = found is not None and purpose in grant.purposes
        return Decision(
            in_scope=in_scope,
            level=level,
            purpose_allowed=allowed,
            may_reveal=allowed and (field_class, purpose) in grant.reveal,
            needs_consent=found is not None and found.legal_basis is LegalBasis.CONSENT,
        )

    def mask(self, field: str, value: Any) -> Any:
        """A value as the field's mask shows it (None for a hidden mask or a None value)."""
        if value is None:
            return None
        mask = self.masks[field]
        return None if mask is None else mask(value)


def load_policy(path: Path | None = None) -> Policy:
    """Read and compile a policy file (the repository's by default)."""
    path = path or POLICY_PATH
    with path.open("rb") as policy_file:
        try:
            document = tomllib.load(policy_file)
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"{path.name}: {exc}") from exc
    return Policy(document, source=path.name)


@lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The repository's policy, compiled once per process."""
    return load_policy()
