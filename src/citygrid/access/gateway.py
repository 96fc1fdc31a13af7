"""The access gateway: the one way to read personal data (DESIGN.md, invariant 2).

Every function here

(a) filters rows by the actor's territorial scopes in SQL (OR-ed ranges on the indexed
    ``grid_code``; see ``registry.repository.scope_condition``);
(b) shows each field as the policy says for the actor's role (or department): ``clear`` as
    stored, ``masked`` through the field's mask, ``hidden`` absent;
(c) requires a purpose of use from the catalogue that the actor's grant lists;
(d) checks consent where the purpose's legal basis is consent: a person's detail and reveal
    are refused without an active consent, a list withholds the classes a person has not
    consented to and says so;
(e) appends the access-log entry in the caller's transaction, so the read and its record
    commit together or not at all.

A refusal raises a domain error that carries its *denied* log entry (``denial_of(error)``).
The request's transaction rolls back on error, so the caller records the entry with
``record_denial`` and lets its unit of work commit before answering (see ``persons_api``):
a denied entry then commits like any other, and never alone with a read.

A person, building, unit or household outside the scope is "not found", exactly as one that
does not exist; only the denied log entry tells the two apart (``detail.reason``).

``notification_views`` is the other way round: not a caller asking, but departments' systems
being told of a person (the webhooks' fan-out). Whoever may not be told is simply left out
(no error, no entry); each one told gets its ``told`` entry in the caller's transaction.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from citygrid.access import consent as consent_store
from citygrid.access.policy import Grant, LegalBasis, Level, Policy, PolicyError, Purpose
from citygrid.access.policy import default_policy as _default_policy
from citygrid.audit import service as audit
from citygrid.kit.actor import Actor
from citygrid.kit.clock import local_today
from citygrid.kit.errors import BadRequest, CitygridError, Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.registry import repository as registry
from citygrid.registry.models import Building, Household, HousingUnit
from citygrid.territory import service as territory
from citygrid.territory.models import Level as TerritoryLevel

ACTION_LIST = "list_persons"
ACTION_READ = "read_person"
ACTION_SEARCH = "search_persons"
ACTION_REVEAL = "reveal"

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_SEARCH_LIMIT = 100

#: Shown for every person the caller may see at all: not personal data by themselves.
ALWAYS_SHOWN = ("ref", "grid_code")
#: The fields the persons table (and the current residence) supply, in the answer's order.
PERSON_FIELDS = (
    "name",
    "id_number",
    "sex",
    "birth_date",
    "ethnicity",
    "status",
    "mobile",
    "landline",
    "address",
    "population_type",
    "household_ref",
    "relation_to_head",
    "marital_status",
)
#: Fields a list may be sorted by (when the caller sees them in clear).
SORTABLE = frozenset(PERSON_FIELDS) - {"address"}
#: Fields a list may be filtered by, with a value (when the caller sees them in clear).
FILTERABLE = frozenset(
    {"sex", "ethnicity", "status", "population_type", "relation_to_head", "marital_status"}
)
_REF_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,24}")
_ID_NUMBER_PATTERN = re.compile(r"[0-9]{17}[0-9X]")


def default_policy() -> Policy:
    """The policy the gateway applies (the repository's ``policy.toml``)."""
    return _default_policy()


# ============================================================================ errors


class _Denied(CitygridError):
    """A refusal of the gateway: carries the denied entry for the access log."""

    denial: audit.AccessRecord | None = None


class AccessNotFound(_Denied, NotFound):
    """No such record, or one outside the caller's scope (indistinguishable: 404)."""


class AccessForbidden(_Denied, Forbidden):
    """The caller may not see this (403): a purpose, a field, a missing consent."""


class AccessBadRequest(_Denied, BadRequest):
    """A request the gateway cannot serve as asked (400): no purpose, unknown field."""


def denial_of(error: BaseException) -> audit.AccessRecord | None:
    """The denied access-log entry a gateway error carries, if any."""
    return error.denial if isinstance(error, _Denied) else None


def record_denial(session: Session, error: BaseException) -> int | None:
    """Append the denied entry of a gateway error in the caller's transaction (which must then
    commit: the caller catches the error instead of letting it roll the request back)."""
    denial = denial_of(error)
    return None if denial is None else audit.append(session, denial)


DeniedT = TypeVar("DeniedT", bound=_Denied)


def _deny(
    error: DeniedT,
    actor: Actor,
    *,
    action: str,
    purpose: str | None,
    reason: str,
    subjects: Sequence[str] = (),
    fields: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> DeniedT:
    detail: dict[str, Any] = {"policy_version": default_policy().version, "reason": reason}
    if extra:
        detail.update(extra)
    error.denial = audit.record_for(
        actor,
        action=action,
        outcome=audit.DENIED,
        purpose=purpose,
        subjects=tuple(subjects),
        fields=tuple(fields),
        request_id=actor.request_id,
        client_address=actor.client_address,
        detail=detail,
    )
    return error


# ============================================================================ views

Transform = Callable[[Any], Any]


class FieldSource(Protocol):
    """Supplies fields of a class whose data lives outside the persons table (allowance,
    pension, tenancy, criminal record: the exchange brings them). Register one with
    ``register_field_source``; the gateway masks, gates and audits its fields like the rest."""

    fields: tuple[str, ...]

    def load(self, session: Session, person_ids: Sequence[int]) -> Mapping[int, Mapping[str, Any]]:
        """``{person id: {field: stored value}}`` for the persons asked (absent: no data)."""
        ...


_SOURCES: list[FieldSource] = []


def register_field_source(source: FieldSource) -> None:
    """Plug in the data of field classes kept elsewhere (see ``FieldSource``)."""
    policy = default_policy()
    for name in source.fields:
        if name not in policy.class_of_field or name in PERSON_FIELDS:
            raise PolicyError(f"field source: {name} is not a policy field of its own")
    _SOURCES.append(source)
    _view.cache_clear()


def unregister_field_source(source: FieldSource) -> None:
    """Unplug a source registered with ``register_field_source`` (tests, reloads)."""
    if source in _SOURCES:
        _SOURCES.remove(source)
        _view.cache_clear()


def json_value(value: Any) -> Any:
    """A stored value as JSON carries it: an enum as its value, a decimal as text (no float
    rounding), a date or time in ISO 8601, a list item by item."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    return value


def _iso_date(value: Any) -> Any:
    # SQLite hands the stored text back as is; PostgreSQL's driver makes it a date.
    return value if isinstance(value, str) else value.isoformat()


def _clear_text(field_name: str) -> Transform | None:
    """How a stored value becomes the answer's (None: as it is)."""
    if field_name == "birth_date":
        return _iso_date
    if field_name == "household_ref":
        return str
    return None


# A mask that leaves this unchanged shows values as stored (kind "none"): such a field is clear
# whatever its level says, so it may be sorted and filtered by and needs no reveal.
_PROBE = "0123456789abcdefghijklmnopqrstuvwxyz-0123456789"


def _shows_as_stored(policy: Policy, field_name: str) -> bool:
    mask = policy.masks[field_name]
    return mask is not None and mask(_PROBE) == _PROBE


@dataclass(frozen=True, slots=True)
class ShownField:
    """A field in the answer: its class, how it is shown, and how to make it so."""

    name: str
    field_class: str
    level: Level
    transform: Transform | None  # None: shown as stored
    column: str = ""  # the repository column it is made from (its own name by default)

    @property
    def source_column(self) -> str:
        """The column to select for this field."""
        return self.column or self.name


@dataclass(frozen=True)
class View:
    """What one (role, department, purpose) sees: compiled once, applied to every row."""

    purpose: Purpose
    grant: Grant
    levels: Mapping[str, Level]  # every policy field -> level for this caller
    shown: tuple[ShownField, ...]  # person fields in the answer, in order
    sourced: tuple[tuple[FieldSource, tuple[ShownField, ...]], ...]  # fields kept elsewhere
    classes: tuple[str, ...]  # field classes in the answer
    needs_consent: bool
    # Every policy field the caller sees (clear or masked), wherever its value comes from:
    # how notifications show an event's facts and a dataset's rows.
    by_field: Mapping[str, ShownField] = field(default_factory=dict)

    @property
    def masked_fields(self) -> tuple[str, ...]:
        """Fields shown masked."""
        return tuple(item.name for item in self.all_shown if item.level is Level.MASKED)

    @property
    def all_shown(self) -> tuple[ShownField, ...]:
        """Every shown field, the persons table's first."""
        return self.shown + tuple(item for _s, items in self.sourced for item in items)

    def revealable(self) -> tuple[str, ...]:
        """Masked fields the purpose allows revealing."""
        return tuple(
            item.name
            for item in self.all_shown
            if item.level is Level.MASKED
            and (item.field_class, self.purpose.code) in self.grant.reveal
        )


def _shown_field(policy: Policy, name: str, level: Level) -> ShownField | None:
    if level is Level.HIDDEN:
        return None
    if level is Level.CLEAR:
        return ShownField(name, policy.class_of_field[name], level, _clear_text(name))
    mask = policy.masks[name]
    if mask is None:  # a "hidden" mask: the field never shows, whatever the level
        return None
    field_class = policy.class_of_field[name]
    constant = _constant_output(mask)
    if name == "address" and constant is not None:
        # The mask shows every address alike ("***"): whether there is one is all it needs,
        # and that is far cheaper to ask than the building and unit behind it.
        return ShownField(
            name,
            field_class,
            level,
            lambda has_residence: constant if has_residence else None,
            column="has_residence",
        )
    # Every mask takes the stored value (text, date or number) and returns text.
    return ShownField(name, field_class, level, mask)


def _constant_output(mask: Transform) -> Any:
    """What a mask shows for every value (redaction), or None if it depends on the value."""
    outputs = {mask(probe) for probe in ("a", _PROBE, "1990-01-01", "张三丰")}
    return outputs.pop() if len(outputs) == 1 else None


@lru_cache(maxsize=256)
def _view(role: str, department: str | None, purpose_code: str) -> View:
    policy = default_policy()
    grant = policy.grant(role, department)
    purpose = policy.purposes[purpose_code]
    levels = {}
    for name, class_name in policy.class_of_field.items():
        level = grant.levels.get(class_name, Level.HIDDEN)
        if level is Level.MASKED and _shows_as_stored(policy, name):
            level = Level.CLEAR
        levels[name] = level
    shown = tuple(
        item
        for name in PERSON_FIELDS
        if (item := _shown_field(policy, name, levels[name])) is not None
    )
    sourced = []
    for source in _SOURCES:
        items = tuple(
            item
            for name in source.fields
            if (item := _shown_field(policy, name, levels[name])) is not None
        )
        if items:
            sourced.append((source, items))
    classes = tuple(
        dict.fromkeys(item.field_class for item in shown + tuple(i for _, s in sourced for i in s))
    )
    by_field = {
        name: item
        for name in policy.class_of_field
        if (item := _shown_field(policy, name, levels[name])) is not None
    }
    return View(
        purpose=purpose,
        grant=grant,
        levels=levels,
        shown=shown,
        sourced=tuple(sourced),
        classes=classes,
        needs_consent=purpose.legal_basis is LegalBasis.CONSENT,
        by_field=by_field,
    )


def _scopes(actor: Actor) -> tuple[str, ...]:
    # Only digit prefixes are scopes: an empty or malformed one must never widen the range.
    return tuple(prefix for prefix in actor.scopes if prefix.isascii() and prefix.isdigit())


def _in_scope(actor: Actor, grid_code: str) -> bool:
    return any(grid_code.startswith(prefix) for prefix in _scopes(actor))


def view_for(
    actor: Actor, *, purpose: str | None, action: str, subjects: Sequence[str] = ()
) -> View:
    """The compiled view of an actor for a purpose; 400 without a purpose or with an unknown
    one, 403 when the actor's role may not use it (each with its denied entry)."""
    policy = default_policy()
    if not purpose:
        raise _deny(
            AccessBadRequest(
                _("A purpose of use is required."),
                code="purpose_required",
                details=[{"field": "purpose", "reason": _("required")}],
            ),
            actor,
            action=action,
            purpose=None,
            reason="purpose_required",
            subjects=subjects,
        )
    if purpose not in policy.purposes:
        raise _deny(
            AccessBadRequest(
                _("purpose: not in the catalogue of purposes of use."),
                code="unknown_purpose",
                details=[{"field": "purpose", "reason": _("not in the catalogue")}],
            ),
            actor,
            action=action,
            purpose=None,
            reason="unknown_purpose",
            subjects=subjects,
        )
    try:
        grant = policy.grant(actor.role, actor.department)
    except PolicyError:
        grant = None
    if grant is None or purpose not in grant.purposes:
        raise _deny(
            AccessForbidden(
                _("Your role may not use the purpose %(purpose)s.") % {"purpose": purpose},
                code="purpose_not_allowed",
                details={"purpose": purpose},
            ),
            actor,
            action=action,
            purpose=purpose,
            reason="purpose_not_allowed",
            subjects=subjects,
        )
    return _view(actor.role, actor.department, purpose)


def allowed_purposes(actor: Actor) -> list[Purpose]:
    """The catalogue's purposes the actor may use, in catalogue order."""
    policy = default_policy()
    try:
        grant = policy.grant(actor.role, actor.department)
    except PolicyError:
        return []
    return [purpose for code, purpose in policy.purposes.items() if code in grant.purposes]


# ============================================================================ answers


@dataclass(frozen=True)
class PersonPage:
    """A list or search answer: masked items, how many match, and what the answer holds."""

    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int
    purpose: str
    classes: tuple[str, ...]  # field classes present in the answer
    masked: tuple[str, ...]  # fields shown masked
    consent_required: bool  # the purpose rests on consent: see each item's "withheld"
    unit_ids: list[int | None] = field(default_factory=list)  # with ``placement=True``
    audit_entry_id: int | None = None


@dataclass(frozen=True)
class PersonDetail:
    """One person as the caller may see them, and what may be revealed."""

    person: dict[str, Any]
    purpose: str
    masked: tuple[str, ...]
    revealable: tuple[str, ...]
    withheld: tuple[str, ...]  # field classes without consent (consent purposes only)
    audit_entry_id: int | None = None


@dataclass(frozen=True)
class Revealed:
    """Fields of one person unmasked for a purpose (shown once, never cached)."""

    ref: str
    purpose: str
    fields: dict[str, Any]
    audit_entry_id: int | None = None


# ============================================================================ checks


def _check_fields(
    actor: Actor, view: View, names: Sequence[str] | None, *, action: str
) -> tuple[str, ...] | None:
    """``fields=``: only fields the caller sees in clear (and may read for this purpose)."""
    if names is None:
        return None
    policy = default_policy()
    wanted: list[str] = []
    for name in dict.fromkeys(names):
        if name in ALWAYS_SHOWN:
            continue
        _check_field_clear(actor, view, name, policy=policy, action=action, use="fields")
        wanted.append(name)
    return tuple(wanted)


def _check_field_clear(
    actor: Actor, view: View, name: str, *, policy: Policy, action: str, use: str
) -> None:
    purpose = view.purpose.code
    if name not in policy.class_of_field:
        raise _deny(
            AccessBadRequest(
                _("%(use)s: unknown field %(field)s.") % {"use": use, "field": name},
                code="unknown_field",
                details=[{"field": use, "reason": _("unknown field"), "name": name}],
            ),
            actor,
            action=action,
            purpose=purpose,
            reason="unknown_field",
            fields=(name,),
        )
    level = view.levels[name]
    if level is not Level.CLEAR:
        raise _deny(
            AccessForbidden(
                _("%(use)s: the field %(field)s is not shown to you in clear.")
                % {"use": use, "field": name},
                code="field_not_clear",
                details={"field": name, "level": level.value, "use": use},
            ),
            actor,
            action=action,
            purpose=purpose,
            reason="field_not_clear",
            fields=(name,),
        )
    if view.needs_consent and use in ("sort", "filter"):
        # Ordering or filtering by a consent-gated field would leak it for persons whose
        # consent is missing.
        raise _deny(
            AccessForbidden(
                _("%(use)s: the field %(field)s needs each person's consent for %(purpose)s.")
                % {"use": use, "field": name, "purpose": purpose},
                code="field_needs_consent",
                details={"field": name, "use": use, "purpose": purpose},
            ),
            actor,
            action=action,
            purpose=purpose,
            reason="field_needs_consent",
            fields=(name,),
        )


def _order(
    actor: Actor, view: View, sort: str | None, *, action: str
) -> tuple[tuple[str, bool], ...]:
    if not sort:
        return ()
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    policy = default_policy()
    if name in ALWAYS_SHOWN:
        return ((name, descending),)
    _check_field_clear(actor, view, name, policy=policy, action=action, use="sort")
    if name not in SORTABLE:
        raise _deny(
            AccessBadRequest(
                _("sort: the field %(field)s cannot be sorted by.") % {"field": name},
                code="not_sortable",
                details=[{"field": "sort", "reason": _("not sortable"), "name": name}],
            ),
            actor,
            action=action,
            purpose=view.purpose.code,
            reason="not_sortable",
            fields=(name,),
        )
    return ((name, descending),)


def _filters(
    actor: Actor, view: View, filters: Mapping[str, str] | None, *, action: str
) -> tuple[tuple[str, str], ...]:
    if not filters:
        return ()
    policy = default_policy()
    pairs = []
    for name, value in filters.items():
        _check_field_clear(actor, view, name, policy=policy, action=action, use="filter")
        if name not in FILTERABLE:
            raise _deny(
                AccessBadRequest(
                    _("filter: the field %(field)s cannot be filtered by.") % {"field": name},
                    code="not_filterable",
                    details=[{"field": "filter", "reason": _("not filterable"), "name": name}],
                ),
                actor,
                action=action,
                purpose=view.purpose.code,
                reason="not_filterable",
                fields=(name,),
            )
        pairs.append((name, value))
    return tuple(pairs)


def _check_limit(limit: int, offset: int, maximum: int) -> None:
    if not 1 <= limit <= maximum:
        raise ValidationFailed.one("limit", _("must be between 1 and %(max)d") % {"max": maximum})
    if offset < 0:
        raise ValidationFailed.one("offset", _("must not be negative"))


# ============================================================================ reading


def _columns(view: View, fields: tuple[str, ...] | None, placement: bool) -> tuple[str, ...]:
    names = ["id", *ALWAYS_SHOWN]
    names += [item.source_column for item in view.shown if fields is None or item.name in fields]
    if placement:
        names.append("unit_id")
    return tuple(names)


def _rows_to_items(
    session: Session,
    view: View,
    rows: Sequence[Any],
    *,
    fields: tuple[str, ...] | None,
    covered: Mapping[int, frozenset[str]] | None,
) -> tuple[list[dict[str, Any]], set[str]]:
    """Masked items from rows of ``_columns`` (id first), with consent applied; and the field
    classes actually present."""
    plan = [
        (item.name, index, item.transform, item.field_class)
        for index, item in enumerate(
            (i for i in view.shown if fields is None or i.name in fields), start=3
        )
    ]
    items: list[dict[str, Any]] = []
    present: set[str] = set()
    if covered is None:
        # The hot path (statutory purposes): no per-item consent, precompiled transforms.
        # Column by column, then one dict per row: a third faster than field by field.
        columns = list(zip(*rows, strict=True)) if rows else []
        names = ["ref", "grid_code"]
        shown_columns: list[Sequence[Any]] = [columns[1], columns[2]] if rows else []
        for name, index, fn, _class_name in plan:
            names.append(name)
            if rows:
                column = columns[index]
                shown_columns.append(
                    column if fn is None else [v if v is None else fn(v) for v in column]
                )
        # Every column has a value per row and a name: the lengths agree by construction.
        items = [
            dict(zip(names, values, strict=False)) for values in zip(*shown_columns, strict=True)
        ]
        if rows:
            present.update(class_name for *_rest, class_name in plan)
    else:
        for row in rows:
            allowed = covered.get(row[0], frozenset())
            item = {"ref": row[1], "grid_code": row[2]}
            for name, index, fn, class_name in plan:
                if class_name in allowed:
                    value = row[index]
                    item[name] = value if value is None or fn is None else fn(value)
                    present.add(class_name)
            withheld = [name for name in view.classes if name not in allowed]
            if withheld:
                item["withheld"] = withheld
            items.append(item)
    _add_sourced(session, view, rows, items, fields=fields, covered=covered, present=present)
    return items, present


def _add_sourced(
    session: Session,
    view: View,
    rows: Sequence[Any],
    items: list[dict[str, Any]],
    *,
    fields: tuple[str, ...] | None,
    covered: Mapping[int, frozenset[str]] | None,
    present: set[str],
) -> None:
    for source, shown in view.sourced:
        wanted = [item for item in shown if fields is None or item.name in fields]
        if not wanted or not rows:
            continue
        data = source.load(session, [row[0] for row in rows])
        for row, item in zip(rows, items, strict=True):
            values = data.get(row[0])
            if not values:
                continue
            allowed = None if covered is None else covered.get(row[0], frozenset())
            for shown_field in wanted:
                if allowed is not None and shown_field.field_class not in allowed:
                    continue
                value = values.get(shown_field.name)
                transform = shown_field.transform
                item[shown_field.name] = (
                    value if value is None or transform is None else transform(value)
                )
                present.add(shown_field.field_class)


def _covered(
    session: Session, actor: Actor, view: View, person_ids: Sequence[int]
) -> dict[int, frozenset[str]] | None:
    if not view.needs_consent:
        return None
    return consent_store.consented_classes(
        session,
        person_ids=person_ids,
        requester_department=consent_store.requester_of(actor),
        purpose=view.purpose.code,
        on=local_today(),
    )


def _append(
    session: Session,
    actor: Actor,
    *,
    action: str,
    purpose: str,
    subjects: Sequence[str],
    fields: Iterable[str],
    extra: Mapping[str, Any] | None = None,
) -> int:
    detail: dict[str, Any] = {"policy_version": default_policy().version}
    if extra:
        detail.update(extra)
    return audit.append(
        session,
        audit.record_for(
            actor,
            action=action,
            outcome=audit.ALLOWED,
            purpose=purpose,
            subjects=tuple(subjects),
            fields=tuple(fields),
            request_id=actor.request_id,
            client_address=actor.client_address,
            detail=detail,
        ),
    )


def _ordered_classes(view: View, present: set[str]) -> tuple[str, ...]:
    return tuple(name for name in view.classes if name in present)


def _check_place(
    session: Session,
    actor: Actor,
    *,
    purpose: str,
    grid_code: str | None,
    building_id: int | None,
    unit_id: int | None,
    household_id: int | None,
) -> dict[str, Any]:
    """Exactly one place; in the scope (else 404 with a denied entry). Returns its audit
    description."""
    given = {
        name: value
        for name, value in (
            ("grid_code", grid_code),
            ("building_id", building_id),
            ("unit_id", unit_id),
            ("household_id", household_id),
        )
        if value is not None
    }
    if len(given) != 1:
        raise ValidationFailed.one(
            "grid_code", _("name exactly one of grid, building, unit or household")
        )
    ((name, value),) = given.items()
    if name == "grid_code":
        code = str(value)
        if len(code) != 15 or not code.isascii() or not code.isdigit():
            raise ValidationFailed.one("code", _("must be 15 digits"))
        place_grid: str | None = code
    else:
        models: dict[str, type[Building | HousingUnit | Household]] = {
            "building_id": Building,
            "unit_id": HousingUnit,
            "household_id": Household,
        }
        place_grid = registry.grid_code_of(session, models[name], int(value))
    if place_grid is None or not _in_scope(actor, place_grid):
        raise _deny(
            AccessNotFound(_("Nothing found here.")),
            actor,
            action=ACTION_LIST,
            purpose=purpose,
            reason="out_of_scope" if place_grid is not None else "not_found",
            extra={name: value},
        )
    return {name: value}


def _grid_exists(session: Session, grid_code: str) -> bool:
    try:
        unit = territory.get_unit(session, code=grid_code)
    except NotFound:
        return False
    return unit.level is TerritoryLevel.GRID


def list_persons(
    session: Session,
    actor: Actor,
    *,
    purpose: str | None,
    grid_code: str | None = None,
    building_id: int | None = None,
    unit_id: int | None = None,
    household_id: int | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
    fields: Sequence[str] | None = None,
    sort: str | None = None,
    filters: Mapping[str, str] | None = None,
    placement: bool = False,
) -> PersonPage:
    """The persons of one grid, building, unit or household inside the actor's scope, masked
    by policy, for a purpose; audited (every returned person is a subject).

    ``fields`` asks for fields in clear (403 for one the actor sees masked or hidden);
    ``sort`` (``name`` or ``-name``) and ``filters`` (``{field: value}``) only on fields the
    actor sees in clear; ``placement`` adds each person's current unit id (pages group by it).
    """
    view = view_for(actor, purpose=purpose, action=ACTION_LIST)
    code = view.purpose.code
    _check_limit(limit, offset, MAX_LIMIT)
    place = _check_place(
        session,
        actor,
        purpose=code,
        grid_code=grid_code,
        building_id=building_id,
        unit_id=unit_id,
        household_id=household_id,
    )
    # Listing a household shows who belongs to it (household registration); listing a
    # building or unit shows where people live (their address): not for a role that never
    # sees those fields.
    placed_by = "household_ref" if household_id is not None else None
    if building_id is not None or unit_id is not None:
        placed_by = "address"
    if placed_by is not None and view.levels[placed_by] is Level.HIDDEN:
        raise _deny(
            AccessForbidden(
                _("filter: the field %(field)s is never shown to your role.")
                % {"field": placed_by},
                code="field_hidden",
                details={"field": placed_by, "use": "filter"},
            ),
            actor,
            action=ACTION_LIST,
            purpose=code,
            reason="field_hidden",
            fields=(placed_by,),
            extra=place,
        )
    wanted = _check_fields(actor, view, fields, action=ACTION_LIST)
    order = _order(actor, view, sort, action=ACTION_LIST)
    equals = _filters(actor, view, filters, action=ACTION_LIST)
    criteria = registry.PersonCriteria(
        scopes=_scopes(actor),
        grid_code=grid_code,
        building_id=building_id,
        unit_id=unit_id,
        household_id=household_id,
        equals=equals,
    )
    today = local_today()
    rows = registry.scoped_person_rows(
        session,
        criteria,
        columns=_columns(view, wanted, placement),
        today=today,
        order_by=order,
        limit=limit,
        offset=offset,
    )
    if offset == 0 and len(rows) < limit:
        total = len(rows)  # the whole list is here: no second query
    else:
        total = registry.count_scoped_persons(session, criteria, today=today)
    if total == 0 and grid_code is not None and not _grid_exists(session, grid_code):
        raise _deny(
            AccessNotFound(_("Nothing found here.")),
            actor,
            action=ACTION_LIST,
            purpose=code,
            reason="not_found",
            extra=place,
        )
    covered = _covered(session, actor, view, [row[0] for row in rows])
    items, present = _rows_to_items(session, view, rows, fields=wanted, covered=covered)
    refs = [item["ref"] for item in items]
    extra: dict[str, Any] = dict(place)
    if covered is not None:
        extra["withheld"] = sum(1 for item in items if "withheld" in item)
    entry_id = _append(
        session,
        actor,
        action=ACTION_LIST,
        purpose=code,
        subjects=refs,
        fields=_ordered_classes(view, present),
        extra=extra,
    )
    return PersonPage(
        items=items,
        total=total,
        limit=limit,
        offset=offset,
        purpose=code,
        classes=_ordered_classes(view, present),
        masked=tuple(name for name in view.masked_fields if wanted is None or name in wanted),
        consent_required=view.needs_consent,
        unit_ids=[row[-1] for row in rows] if placement else [],
        audit_entry_id=entry_id,
    )


ACTION_LIST_SUBJECTS = "list_subjects"


def persons_by_refs(
    session: Session,
    actor: Actor,
    *,
    purpose: str | None,
    refs: Sequence[str],
    fields: Sequence[str] | None = None,
) -> PersonPage:
    """The persons named by these opaque references that lie inside the actor's scope (the
    others are simply absent: outside the scope is "not found"), masked by policy, for a
    purpose; one audit entry whose subjects are the persons shown. For lists that name their
    subjects, such as a task list. ``fields`` narrows the answer to those fields (each still
    shown at the caller's level: masked ones masked, hidden ones absent)."""
    view = view_for(actor, purpose=purpose, action=ACTION_LIST_SUBJECTS)
    code = view.purpose.code
    wanted_refs = tuple(dict.fromkeys(ref for ref in refs if _REF_PATTERN.fullmatch(ref)))
    if len(wanted_refs) > MAX_LIMIT:
        raise ValidationFailed.one("refs", _("at most %(max)d at once") % {"max": MAX_LIMIT})
    wanted = None if fields is None else tuple(fields)
    rows: Sequence[Any] = []
    if wanted_refs:
        criteria = registry.PersonCriteria(scopes=_scopes(actor), refs=wanted_refs)
        rows = registry.scoped_person_rows(
            session,
            criteria,
            columns=_columns(view, wanted, False),
            today=local_today(),
            limit=len(wanted_refs),
        )
    covered = _covered(session, actor, view, [row[0] for row in rows])
    items, present = _rows_to_items(session, view, rows, fields=wanted, covered=covered)
    entry_id = None
    if items:
        entry_id = _append(
            session,
            actor,
            action=ACTION_LIST_SUBJECTS,
            purpose=code,
            subjects=[item["ref"] for item in items],
            fields=_ordered_classes(view, present),
        )
    return PersonPage(
        items=items,
        total=len(items),
        limit=len(wanted_refs),
        offset=0,
        purpose=code,
        classes=_ordered_classes(view, present),
        masked=tuple(name for name in view.masked_fields if wanted is None or name in wanted),
        consent_required=view.needs_consent,
        audit_entry_id=entry_id,
    )


def _one_person(
    session: Session,
    actor: Actor,
    view: View,
    *,
    person_ref: str,
    action: str,
    columns: tuple[str, ...],
) -> Any:
    """The row of one person in scope; 404 with a denied entry otherwise."""
    well_formed = bool(_REF_PATTERN.fullmatch(person_ref))
    row = None
    if well_formed:
        criteria = registry.PersonCriteria(scopes=_scopes(actor), ref=person_ref)
        rows = registry.scoped_person_rows(
            session, criteria, columns=columns, today=local_today(), limit=1
        )
        row = rows[0] if rows else None
    if row is None:
        exists = well_formed and registry.person_key(session, ref=person_ref) is not None
        raise _deny(
            AccessNotFound(_("No such person.")),
            actor,
            action=action,
            purpose=view.purpose.code,
            reason="out_of_scope" if exists else "not_found",
            # A ref that names nobody is no one's: only a real person's ref is a subject.
            subjects=(person_ref,) if exists else (),
        )
    return row


def _consent_missing(
    actor: Actor, view: View, *, person_ref: str, classes: Sequence[str], action: str
) -> AccessForbidden:
    purpose = view.purpose.code
    requester = consent_store.requester_of(actor)
    return _deny(
        AccessForbidden(
            _("No active consent of this person for %(purpose)s covers: %(classes)s.")
            % {"purpose": purpose, "classes": ", ".join(classes)},
            code="consent_required",
            details={
                "person": person_ref,
                "purpose": purpose,
                "requester_department": requester,
                "field_classes": list(classes),
            },
        ),
        actor,
        action=action,
        purpose=purpose,
        reason="consent_required",
        subjects=(person_ref,),
        fields=classes,
    )


def get_person(
    session: Session, actor: Actor, *, person_ref: str, purpose: str | None
) -> PersonDetail:
    """One person inside the actor's scope, masked by policy, for a purpose; audited.
    404 outside the scope (with a denied entry); 403 without consent where it is needed."""
    view = view_for(actor, purpose=purpose, action=ACTION_READ)
    row = _one_person(
        session,
        actor,
        view,
        person_ref=person_ref,
        action=ACTION_READ,
        columns=_columns(view, None, False),
    )
    covered = _covered(session, actor, view, [row[0]])
    if covered is not None and view.classes and not covered.get(row[0]):
        raise _consent_missing(
            actor, view, person_ref=person_ref, classes=view.classes, action=ACTION_READ
        )
    items, present = _rows_to_items(session, view, [row], fields=None, covered=covered)
    person = items[0]
    withheld = tuple(person.pop("withheld", ()))
    classes = _ordered_classes(view, present)
    entry_id = _append(
        session,
        actor,
        action=ACTION_READ,
        purpose=view.purpose.code,
        subjects=(person_ref,),
        fields=classes,
    )
    return PersonDetail(
        person=person,
        purpose=view.purpose.code,
        masked=tuple(name for name in view.masked_fields if name in person),
        revealable=tuple(name for name in view.revealable() if name in person),
        withheld=withheld,
        audit_entry_id=entry_id,
    )


def search_persons(
    session: Session,
    actor: Actor,
    *,
    purpose: str | None,
    name: str | None = None,
    name_prefix: bool = False,
    id_number: str | None = None,
    limit: int = 20,
) -> PersonPage:
    """Persons inside the actor's scope by name (exact or prefix) and/or ID number (exact),
    masked by policy; audited with the number of matches. A search never looks outside the
    scope, so it cannot confirm a value there; searching by a field hidden from the role is
    refused (403). The terms are bound parameters and plain text (no wildcards)."""
    view = view_for(actor, purpose=purpose, action=ACTION_SEARCH)
    code = view.purpose.code
    _check_limit(limit, 0, MAX_SEARCH_LIMIT)
    name = (name or "").strip() or None
    id_number = (id_number or "").strip().upper() or None
    if name is None and id_number is None:
        raise ValidationFailed(
            _("Give a name or an ID number to search for."),
            details=[
                {"field": "name", "reason": _("name or ID number required")},
                {"field": "id_number", "reason": _("name or ID number required")},
            ],
        )
    criteria_used = []
    for field_name, value in (("name", name), ("id_number", id_number)):
        if value is None:
            continue
        criteria_used.append(
            f"{field_name}_prefix" if field_name == "name" and name_prefix else field_name
        )
        if view.levels[field_name] is Level.HIDDEN:
            raise _deny(
                AccessForbidden(
                    _("You may not search by %(field)s.") % {"field": field_name},
                    code="field_hidden",
                    details={"field": field_name},
                ),
                actor,
                action=ACTION_SEARCH,
                purpose=code,
                reason="field_hidden",
                fields=(field_name,),
            )
    if name is not None and len(name) > 50:
        raise ValidationFailed.one("name", _("at most 50 characters"))
    if view.needs_consent:
        # Matching on a consent-gated field would confirm it for persons without consent.
        for field_name in ("name", "id_number"):
            if (name if field_name == "name" else id_number) is not None:
                _check_field_clear(
                    actor,
                    view,
                    field_name,
                    policy=default_policy(),
                    action=ACTION_SEARCH,
                    use="filter",
                )
    rows: Sequence[Any] = []
    total = 0
    # A well-formed ID number can match; anything else matches nobody (no query needed).
    if id_number is None or _ID_NUMBER_PATTERN.fullmatch(id_number):
        criteria = registry.PersonCriteria(
            scopes=_scopes(actor), name=name, name_prefix=name_prefix, id_number=id_number
        )
        today = local_today()
        rows = registry.scoped_person_rows(
            session, criteria, columns=_columns(view, None, False), today=today, limit=limit
        )
        total = (
            len(rows)
            if len(rows) < limit
            else registry.count_scoped_persons(session, criteria, today=today)
        )
    covered = _covered(session, actor, view, [row[0] for row in rows])
    items, present = _rows_to_items(session, view, rows, fields=None, covered=covered)
    entry_id = _append(
        session,
        actor,
        action=ACTION_SEARCH,
        purpose=code,
        subjects=[item["ref"] for item in items],
        fields=_ordered_classes(view, present),
        # The terms themselves stay out of the log: an ID number searched for is personal
        # data of someone who may not even be in the scope.
        extra={"criteria": criteria_used, "matches": total},
    )
    return PersonPage(
        items=items,
        total=total,
        limit=limit,
        offset=0,
        purpose=code,
        classes=_ordered_classes(view, present),
        masked=view.masked_fields,
        consent_required=view.needs_consent,
        audit_entry_id=entry_id,
    )


def reveal(
    session: Session,
    actor: Actor,
    *,
    person_ref: str,
    purpose: str | None,
    fields: Sequence[str],
) -> Revealed:
    """Named fields of one person in clear, for a purpose the policy lets reveal their class;
    audited with exactly the fields revealed. 403 for a field the role may never see, or one
    whose class the purpose does not reveal, or without consent where it is needed."""
    view = view_for(actor, purpose=purpose, action=ACTION_REVEAL)
    code = view.purpose.code
    policy = default_policy()
    names = list(dict.fromkeys(fields))
    if not names:
        raise ValidationFailed.one("fields", _("name at least one field to reveal"))
    for name in names:
        if name not in policy.class_of_field:
            raise _deny(
                AccessBadRequest(
                    _("fields: unknown field %(field)s.") % {"field": name},
                    code="unknown_field",
                    details=[{"field": "fields", "reason": _("unknown field"), "name": name}],
                ),
                actor,
                action=ACTION_REVEAL,
                purpose=code,
                reason="unknown_field",
                subjects=(person_ref,) if _REF_PATTERN.fullmatch(person_ref) else (),
                fields=(name,),
            )
    shown = {item.name: item for item in view.all_shown}
    for name in names:
        class_name = policy.class_of_field[name]
        level = view.levels[name]
        if level is Level.HIDDEN or name not in shown:
            raise _deny(
                AccessForbidden(
                    _("The field %(field)s is never shown to your role.") % {"field": name},
                    code="field_hidden",
                    details={"field": name},
                ),
                actor,
                action=ACTION_REVEAL,
                purpose=code,
                reason="field_hidden",
                subjects=(person_ref,) if _REF_PATTERN.fullmatch(person_ref) else (),
                fields=(name,),
            )
        if level is Level.MASKED and (class_name, code) not in view.grant.reveal:
            raise _deny(
                AccessForbidden(
                    _("The purpose %(purpose)s does not allow revealing %(field)s.")
                    % {"purpose": code, "field": name},
                    code="reveal_not_allowed",
                    details={"field": name, "field_class": class_name, "purpose": code},
                ),
                actor,
                action=ACTION_REVEAL,
                purpose=code,
                reason="reveal_not_allowed",
                subjects=(person_ref,) if _REF_PATTERN.fullmatch(person_ref) else (),
                fields=(name,),
            )
    person_names = tuple(name for name in names if name in PERSON_FIELDS)
    columns = ("id", *ALWAYS_SHOWN, *person_names)
    row = _one_person(
        session, actor, view, person_ref=person_ref, action=ACTION_REVEAL, columns=columns
    )
    needed = tuple(dict.fromkeys(policy.class_of_field[name] for name in names))
    covered = _covered(session, actor, view, [row[0]])
    if covered is not None:
        missing = [name for name in needed if name not in covered.get(row[0], frozenset())]
        if missing:
            raise _consent_missing(
                actor, view, person_ref=person_ref, classes=missing, action=ACTION_REVEAL
            )
    values: dict[str, Any] = {}
    for index, name in enumerate(person_names, start=3):
        value = row[index]
        transform = _clear_text(name)
        values[name] = value if value is None or transform is None else transform(value)
    for source, _items in view.sourced:
        from_source = [name for name in names if name in source.fields]
        if from_source:
            data = source.load(session, [row[0]]).get(row[0]) or {}
            for name in from_source:
                values[name] = data.get(name)
    ordered = {name: values.get(name) for name in names}
    entry_id = _append(
        session,
        actor,
        action=ACTION_REVEAL,
        purpose=code,
        subjects=(person_ref,),
        fields=names,
    )
    return Revealed(ref=person_ref, purpose=code, fields=ordered, audit_entry_id=entry_id)


# ============================================================================ case reporters

ACTION_READ_REPORTER = "read_case_reporter"
ACTION_REVEAL_REPORTER = "reveal_case_reporter"
#: The answer's names of a reporter's fields, and their policy fields.
REPORTER_FIELDS = {"name": "reporter_name", "phone": "reporter_phone"}


@dataclass(frozen=True)
class ReporterContact:
    """The contact a resident left with a report, as the caller may see it."""

    case_ref: str
    purpose: str
    fields: dict[str, Any]  # "name" / "phone" -> shown value (None: none left, or hidden)
    masked: tuple[str, ...]
    revealable: tuple[str, ...]
    audit_entry_id: int | None = None


def case_reporter_visible(actor: Actor, *, purpose: str) -> bool:
    """Whether the actor's role may use the purpose and sees some field of a case's reporter
    for it (masked or clear): the policy alone, nothing read and nothing logged. Pages ask
    it before ``case_reporter`` so that roles that never see a reporter are not refused
    (and logged) on every visit."""
    policy = default_policy()
    try:
        grant = policy.grant(actor.role, actor.department)
    except PolicyError:
        return False
    if purpose not in policy.purposes or purpose not in grant.purposes:
        return False
    view = _view(actor.role, actor.department, purpose)
    return any(
        view.levels[field_name] is not Level.HIDDEN and policy.masks[field_name] is not None
        for field_name in REPORTER_FIELDS.values()
    )


def case_reporter(
    session: Session,
    actor: Actor,
    *,
    case_ref: str,
    grid_code: str | None,
    contact: Mapping[str, str | None],
    purpose: str | None,
    reveal: Sequence[str] = (),
) -> ReporterContact:
    """The reporter's name and phone of a case (``contact``: the stored values, by answer
    name), masked by policy for a purpose, or the ``reveal``-ed fields in clear where the
    policy lets the purpose reveal them; audited with the case as subject. ``grid_code`` is
    the case's (None: no such case): outside the scope is 404 with a denied entry."""
    action = ACTION_REVEAL_REPORTER if reveal else ACTION_READ_REPORTER
    view = view_for(actor, purpose=purpose, action=action)
    code = view.purpose.code
    subject = f"case:{case_ref}"
    if grid_code is None or not _in_scope(actor, grid_code):
        raise _deny(
            AccessNotFound(_("No case has this id.")),
            actor,
            action=action,
            purpose=code,
            reason="out_of_scope" if grid_code is not None else "not_found",
            subjects=(subject,) if grid_code is not None else (),
        )
    policy = default_policy()
    wanted = tuple(dict.fromkeys(reveal))
    for name in wanted:
        field_name = REPORTER_FIELDS.get(name)
        if field_name is None:
            raise ValidationFailed.one("fields", _("unknown field"))
        level = view.levels[field_name]
        if level is Level.HIDDEN or (
            level is Level.MASKED
            and (policy.class_of_field[field_name], code) not in view.grant.reveal
        ):
            raise _deny(
                AccessForbidden(
                    _("The purpose %(purpose)s does not allow revealing %(field)s.")
                    % {"purpose": code, "field": name},
                    code="reveal_not_allowed",
                    details={"field": name, "purpose": code},
                ),
                actor,
                action=action,
                purpose=code,
                reason="reveal_not_allowed",
                subjects=(subject,),
                fields=(field_name,),
            )
    shown: dict[str, Any] = {}
    masked: list[str] = []
    revealable: list[str] = []
    classes: list[str] = []
    for name, field_name in REPORTER_FIELDS.items():
        level = view.levels[field_name]
        if wanted and name not in wanted:
            continue
        mask = policy.masks[field_name]
        if level is Level.HIDDEN or mask is None:
            continue
        value = contact.get(name)
        class_name = policy.class_of_field[field_name]
        if class_name not in classes:
            classes.append(class_name)
        if level is Level.MASKED and name not in wanted:
            shown[name] = None if value is None else mask(value)
            masked.append(name)
            if (class_name, code) in view.grant.reveal:
                revealable.append(name)
        else:
            shown[name] = value
    entry_id = _append(
        session,
        actor,
        action=action,
        purpose=code,
        subjects=(subject,),
        fields=[REPORTER_FIELDS[name] for name in wanted] if wanted else classes,
    )
    return ReporterContact(
        case_ref=case_ref,
        purpose=code,
        fields=shown,
        masked=tuple(masked),
        revealable=tuple(revealable),
        audit_entry_id=entry_id,
    )


# ============================================================================ notifications

ACTION_TOLD = "told"


@dataclass(frozen=True, slots=True)
class Fact:
    """A fact of the news a recipient is told (the day of a death, the unit a move reached):
    its name in the message, the policy field whose class and mask it follows (None: a
    territorial code, which is not personal data), and its stored value (a list: each item
    is shown alike)."""

    name: str
    field: str | None
    value: Any


@dataclass(frozen=True, slots=True)
class PlacedRecord:
    """A row of data about a person kept outside the registry, with the grid code of its own
    place (a tenancy: the let unit's grid; otherwise the person's grid when it was written)."""

    place: str
    values: Mapping[str, Any]


class RecordSource(Protocol):
    """Supplies a dataset's rows about a person to a notification (the exchange brings them):
    the gateway shows each row only where its place lies in the recipient's scope, field by
    field as the recipient's grant says."""

    fields: tuple[tuple[str, str], ...]  # (a row's field, the policy field it is shown as)

    def load(
        self, session: Session, *, person_id: int, scopes: Sequence[str]
    ) -> Sequence[PlacedRecord]:
        """The person's rows whose place lies in one of ``scopes`` (filtered in SQL)."""
        ...


@dataclass(frozen=True)
class Recipient:
    """Who is to be told: a department's system as an actor (name: its API client; role,
    department and territorial scopes), and what its access-log entry adds about the channel
    (a subscription, a delivery id: never personal data)."""

    actor: Actor
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    """What one recipient is told of one person, as its grant shows it; logged as ``told``."""

    recipient: Recipient
    subject: dict[str, Any]  # ref, grid_code and the asked person fields the recipient sees
    facts: dict[str, Any]
    records: list[dict[str, Any]] | None  # None: no dataset was asked
    masked: tuple[str, ...]  # names shown masked
    classes: tuple[str, ...]  # field classes disclosed, as the access-log entry names them


class _Told:
    """Collects the fields of one notification as the recipient's view shows them."""

    def __init__(self, view: View, allowed: frozenset[str] | None) -> None:
        self.view = view
        self.allowed = allowed  # None: no consent needed
        self.classes: dict[str, None] = {}
        self.masked: dict[str, None] = {}

    def put(self, target: dict[str, Any], name: str, field_name: str, value: Any) -> None:
        """Add ``name`` to ``target`` as the policy field ``field_name`` shows (absent when
        hidden, or when the person has not consented to its class)."""
        item = self.view.by_field.get(field_name)
        if item is None or (self.allowed is not None and item.field_class not in self.allowed):
            return
        stored = json_value(value)
        shown = stored
        transform = item.transform
        if stored is not None and transform is not None:
            if isinstance(stored, list):
                shown = [None if one is None else transform(one) for one in stored]
            else:
                shown = transform(stored)
        if item.level is Level.MASKED and shown != stored:
            self.masked[name] = None
        target[name] = shown
        self.classes[item.field_class] = None

    def record(
        self, fields: Sequence[tuple[str, str]], values: Mapping[str, Any]
    ) -> dict[str, Any]:
        """One row: each ``(name, policy field)`` of ``fields`` put as ``put`` does."""
        shown: dict[str, Any] = {}
        for name, field_name in fields:
            self.put(shown, name, field_name, values.get(name))
        return shown


def show_record(
    view: View, fields: Sequence[tuple[str, str]], values: Mapping[str, Any]
) -> dict[str, Any]:
    """One row of a dataset as the view shows it: each ``(name, policy field)`` of ``fields``
    clear, masked or absent as the policy field is (the same rule as a notification's rows).
    Consent and the access-log entry are the caller's (``exchange.service.read_records``)."""
    return _Told(view, None).record(fields, values)


def _notification_view(actor: Actor, purpose: str) -> View | None:
    """The actor's view for the purpose; None when its grant does not list it."""
    policy = default_policy()
    if purpose not in policy.purposes:
        raise PolicyError(f"purposes.{purpose}: not in the catalogue of purposes of use")
    try:
        grant = policy.grant(actor.role, actor.department)
    except PolicyError:
        return None
    if purpose not in grant.purposes:
        return None
    return _view(actor.role, actor.department, purpose)


def may_be_told(actor: Actor, *, purpose: str, fields: Sequence[str]) -> bool:
    """Whether the actor's grant lists the purpose and shows it at least one of the policy
    fields (clear or masked): the policy alone, nothing read and nothing logged. A
    subscription asks it before it is stored; ``notification_views`` asks the same."""
    view = _notification_view(actor, purpose)
    return view is not None and any(name in view.by_field for name in fields)


def notification_views(
    session: Session,
    *,
    recipients: Sequence[Recipient],
    purpose: str,
    person_id: int,
    subject_fields: Sequence[str],
    gate: str | None = None,
    places: Sequence[str] = (),
    facts: Sequence[Fact] = (),
    records: RecordSource | None = None,
) -> list[Notification | None]:
    """What each recipient may be told of a person for a purpose (in the order given), with
    one ``told`` access-log entry per recipient told, appended in the caller's transaction:
    the disclosure and its record commit together, before anything is sent.

    A recipient is told nothing (None, and no entry) when its grant does not list the
    purpose; when it may not see the ``gate`` field at all (even the news would tell it
    something); when neither the person's grid nor one of ``places`` (the grids a move left
    and reached) lies in its scope; or when ``records`` were asked and none is left once the
    rows whose own place lies outside its scope, or whose every field is hidden from it, are
    dropped. Otherwise the person's ``subject_fields``, the ``facts`` and the rows are shown
    field by field as its grant says (clear, masked, absent), and for a purpose resting on
    consent only in the classes the person consented to. The entry names the recipient (its
    client, department and scopes), the purpose and its legal basis, the person's reference
    and the field classes disclosed, with the recipient's ``detail``.

    The person is read once for every recipient, and its few grid codes are checked against
    each scope here rather than in SQL (who may be told depends on several places); the rows
    are read once, filtered in SQL by the scopes of everyone told."""
    answers: list[Notification | None] = [None] * len(recipients)
    candidates: list[tuple[int, Recipient, View]] = []
    for index, recipient in enumerate(recipients):
        view = _notification_view(recipient.actor, purpose)
        if view is not None and (gate is None or gate in view.by_field):
            candidates.append((index, recipient, view))
    if not candidates:
        return answers
    wanted = tuple(dict.fromkeys(subject_fields))
    for name in wanted:
        if name not in PERSON_FIELDS:
            raise PolicyError(f"notification: {name} is not a field of the person")
    columns = dict.fromkeys(("id", *ALWAYS_SHOWN))
    for _index, _recipient, view in candidates:
        for name in wanted:
            item = view.by_field.get(name)
            if item is not None:
                columns[item.source_column] = None
    row = registry.person_columns(
        session, person_id=person_id, columns=tuple(columns), today=local_today()
    )
    if row is None:
        return answers
    stored = row._mapping
    ref, grid_code = str(stored["ref"]), str(stored["grid_code"])
    grids = (grid_code, *places)
    told = [
        candidate
        for candidate in candidates
        if any(_in_scope(candidate[1].actor, code) for code in grids)
    ]
    loaded: Sequence[PlacedRecord] = ()
    if records is not None and told:
        scopes = tuple(dict.fromkeys(p for _i, r, _v in told for p in _scopes(r.actor)))
        loaded = records.load(session, person_id=person_id, scopes=scopes)
    policy_version = default_policy().version
    entries: list[audit.AccessRecord] = []
    for index, recipient, view in told:
        actor = recipient.actor
        allowed = None
        if view.needs_consent:
            covered = _covered(session, actor, view, [person_id]) or {}
            allowed = covered.get(person_id, frozenset())
        shown = _Told(view, allowed)
        subject: dict[str, Any] = {"ref": ref, "grid_code": grid_code}
        for name in wanted:
            item = view.by_field.get(name)
            if item is not None:
                shown.put(subject, name, name, stored[item.source_column])
        data: dict[str, Any] = {}
        for fact in facts:
            if fact.field is None:
                data[fact.name] = json_value(fact.value)
            else:
                shown.put(data, fact.name, fact.field, fact.value)
        rows: list[dict[str, Any]] | None = None
        extra: dict[str, Any] = {}
        if records is not None:
            rows = []
            for record in loaded:
                if _in_scope(actor, record.place) and (
                    values := shown.record(records.fields, record.values)
                ):
                    rows.append(values)
            if not rows:
                continue
            extra["records"] = len(rows)
        classes = tuple(shown.classes)
        entries.append(
            audit.record_for(
                actor,
                action=ACTION_TOLD,
                outcome=audit.ALLOWED,
                purpose=view.purpose.code,
                subjects=(ref,),
                fields=classes,
                request_id=actor.request_id,
                client_address=actor.client_address,
                detail={
                    "policy_version": policy_version,
                    "legal_basis": view.purpose.legal_basis.value,
                    **recipient.detail,
                    **extra,
                },
            )
        )
        answers[index] = Notification(
            recipient=recipient,
            subject=subject,
            facts=data,
            records=rows,
            masked=tuple(shown.masked),
            classes=classes,
        )
    if entries:
        # One executemany for everyone told (no ids to read back).
        audit.append_many(session, entries)
    return answers
