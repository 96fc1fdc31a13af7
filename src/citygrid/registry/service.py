"""The rules of the registry: writes with their change history, and counts per grid.

Every create, update and delete adds a ``registry_changes`` row in the same transaction,
flushed before the function returns: ``before`` / ``after`` hold the changed columns as
JSON (dates as ISO strings; all columns but the timestamps on create and delete); its
``grid_code`` is the row's grid after the change. An update that changes nothing writes
nothing.

Rules kept here:

- every ``grid_code`` names an existing grid (a territorial unit of level grid, as the
  territory service knows it);
- a housing unit's grid is its building's; a building's grid cannot change while it has
  units (they would be left in the old grid);
- a household with a unit lies in the unit's grid;
- a person's household lies in the person's grid (a person registered in one grid belongs
  to a household of that grid); a household has at most one member whose relation to head
  is ``"head"``; a household's grid cannot change while it has members;
- a residence's grid is its unit's; a residence is ended (``end_residence``), not deleted,
  when someone moves out; ``delete_residence`` is for rows entered by mistake;
- an organisation with a unit lies in the unit's grid;
- a row still pointed at (a building with units, a unit with households, residences or
  organisations, a household with members, a person with residences, an organisation with
  employees) cannot be deleted (409).

Bad input raises ``ValidationFailed`` naming every bad field and writes nothing; reasons
never contain the rejected value.
"""

from __future__ import annotations

import enum
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel
from sqlalchemy import inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from citygrid.access.policy import default_policy
from citygrid.audit import service as audit
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, NotFound, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import Base, utcnow
from citygrid.registry import repository
from citygrid.registry.catalogue import load_component_classes
from citygrid.registry.idnumber import IdNumberError
from citygrid.registry.models import (
    Building,
    Component,
    Household,
    HousingUnit,
    LifeStatus,
    MaritalStatus,
    Organisation,
    Person,
    RegistryChange,
    Residence,
    ResidenceKind,
)
from citygrid.registry.schemas import (
    BuildingCreate,
    BuildingUpdate,
    ChangeRead,
    ComponentCreate,
    ComponentUpdate,
    FieldProblem,
    HouseholdCreate,
    HouseholdUpdate,
    HousingUnitCreate,
    HousingUnitUpdate,
    OrganisationCreate,
    OrganisationUpdate,
    PersonCreate,
    PersonUpdate,
    ResidenceCreate,
    ResidenceUpdate,
    check_person_consistency,
    parse,
)
from citygrid.territory import service as territory
from citygrid.territory.models import Level
from citygrid.territory.schemas import UnitRead

RowT = TypeVar("RowT", bound=Base)

#: The ``entity`` written in ``registry_changes`` for each table.
ENTITY_NAMES: dict[type[Base], str] = {
    Building: "building",
    HousingUnit: "housing_unit",
    Household: "household",
    Person: "person",
    Residence: "residence",
    Component: "component",
    Organisation: "organisation",
}

# Maintained by the database / ORM; their change is not news.
_UNTRACKED_COLUMNS = frozenset({"created_at", "updated_at"})

# 24 random bytes are 32 URL-safe characters: the width of buildings.qr_token.
_QR_TOKEN_BYTES = 24
# 12 random bytes are 16 URL-safe characters (96 bits), inside persons.ref (24).
_PERSON_REF_BYTES = 12


def new_qr_token() -> str:
    """A fresh opaque token for a building's QR plate (32 URL-safe characters)."""
    return secrets.token_urlsafe(_QR_TOKEN_BYTES)


def new_person_ref() -> str:
    """A fresh opaque reference for a person in URLs (16 URL-safe characters)."""
    return secrets.token_urlsafe(_PERSON_REF_BYTES)


# ============================================================================ history


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _columns(row: Base) -> list[str]:
    return [
        attribute.key
        for attribute in inspect(type(row)).column_attrs
        if attribute.key not in _UNTRACKED_COLUMNS
    ]


def _snapshot(row: Base) -> dict[str, Any]:
    return {key: _jsonable(getattr(row, key)) for key in _columns(row)}


_WRITE_LOG = "citygrid.registry.write_log"


@dataclass
class WriteLog:
    """History rows and access-log entries of registry writes, held to be written together."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    access: list[audit.AccessRecord] = field(default_factory=list)
    # Grids looked up while the log is open (a batch moves many people into a few grids).
    grids: dict[str, UnitRead | None] = field(default_factory=dict)

    def mark(self) -> tuple[int, int]:
        """Where the log stands, to drop what follows (``drop_after``)."""
        return len(self.changes), len(self.access)

    def drop_after(self, mark: tuple[int, int]) -> None:
        """Forget what was logged after ``mark`` (its writes were rolled back)."""
        del self.changes[mark[0] :]
        del self.access[mark[1] :]


@contextmanager
def batched_write_log(session: Session) -> Iterator[WriteLog]:
    """Within the block, the history rows and access-log entries of registry writes are held
    and written at its end, one executemany each, in the same transaction (nothing is
    written if the block raises). For a caller that writes much and reads none of those
    rows back before the block ends (the exchange publishing a batch of life events). A
    caller that rolls a savepoint back inside the block drops what it logged
    (``WriteLog.mark`` / ``drop_after``)."""
    outer = session.info.get(_WRITE_LOG)
    if outer is not None:
        yield outer
        return
    log = session.info[_WRITE_LOG] = WriteLog()
    try:
        yield log
    finally:
        session.info.pop(_WRITE_LOG, None)
    repository.insert_changes(session, log.changes)
    audit.append_many(session, log.access)


def _record(
    session: Session,
    actor: Actor,
    row: Base,
    *,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    note: str | None = None,
) -> None:
    _history(
        session,
        actor,
        model=type(row),
        row_id=row.id,  # type: ignore[attr-defined]
        grid_code=row.grid_code,  # type: ignore[attr-defined]
        action=action,
        before=before,
        after=after,
        note=note,
    )
    _audit_write(
        session, actor, row, action=action, columns=_written_columns(action, before, after)
    )


def _history(
    session: Session,
    actor: Actor,
    *,
    model: type[Base],
    row_id: int,
    grid_code: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    note: str | None = None,
) -> None:
    """The history row of a write (held in the write log when one is open)."""
    change = {
        "entity": ENTITY_NAMES[model],
        "entity_id": row_id,
        "grid_code": grid_code,
        "action": action,
        "actor": actor.name,
        "before": before,
        "after": after,
        "note": note,
    }
    log: WriteLog | None = session.info.get(_WRITE_LOG)
    if log is not None:
        log.changes.append(change | {"changed_at": utcnow()})
    else:
        session.add(RegistryChange(**change))


def _written_columns(
    action: str, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> list[str]:
    """A created or deleted row names the fields it holds; an update the fields it changed."""
    values = after if after is not None else before or {}
    return [key for key, value in values.items() if value is not None or action == "update"]


# Writes of personal data go to the access log too, in the same transaction (DESIGN.md,
# invariant 2): who changed which field classes of whom. Columns the policy's field classes
# do not name are classed here; the rest (ids, refs) are no personal data.
_AUDITED_ENTITIES: dict[type[Base], str] = {
    Person: "person",
    Residence: "residence",
    Household: "household",
}
_PERSON_COLUMN_CLASSES = {
    "household_id": "household_registration",
    "status": "identity",
    "died_on": "identity",
    "grid_code": "contact",
}
_WRITE_ACTIONS = {"create": "created", "update": "updated", "delete": "deleted"}


def _audit_write(
    session: Session, actor: Actor, row: Base, *, action: str, columns: Iterable[str]
) -> None:
    entity = _AUDITED_ENTITIES.get(type(row))
    if entity is None:
        return
    columns = sorted(columns)
    row_id: int = row.id  # type: ignore[attr-defined]
    if isinstance(row, Person):
        subjects = [row.ref]
        class_of = default_policy().class_of_field
        found = {class_of.get(c) or _PERSON_COLUMN_CLASSES.get(c) for c in columns}
        classes = {name for name in found if name is not None}
    elif isinstance(row, Residence):
        resident = session.get(Person, row.person_id)
        subjects = [resident.ref] if resident is not None else []
        classes = _residence_classes(row.kind)
    else:
        subjects = repository.household_member_refs(session, household_id=row_id)
        classes = {"household_registration"}
    _log_access(
        session,
        actor,
        entity=entity,
        row_id=row_id,
        action=action,
        subjects=subjects,
        classes=classes,
        columns=columns,
    )


def _residence_classes(kind: ResidenceKind) -> set[str]:
    return {"contact", "tenancy"} if kind == ResidenceKind.TENANT else {"contact"}


def _log_access(
    session: Session,
    actor: Actor,
    *,
    entity: str,
    row_id: int,
    action: str,
    subjects: Sequence[str],
    classes: Iterable[str],
    columns: Sequence[str],
) -> None:
    """The access-log entry of a write of personal data (held in the write log when one is
    open)."""
    record = audit.record_for(
        actor,
        action=f"{entity}_{_WRITE_ACTIONS[action]}",
        outcome=audit.ALLOWED,
        subjects=tuple(subjects),
        fields=tuple(sorted(classes)),
        request_id=actor.request_id,
        client_address=actor.client_address,
        detail={"entity": entity, "id": row_id, "columns": columns},
    )
    log: WriteLog | None = session.info.get(_WRITE_LOG)
    if log is not None:
        log.access.append(record)
    else:
        audit.append(session, record)


_DEFER_FLUSH = "citygrid.registry.defer_flush"


@contextmanager
def deferred_flush(session: Session) -> Iterator[None]:
    """Within the block, updates and history rows are flushed once at its end instead of
    after each write (an insert still flushes at once: its history row needs its id).

    For a caller that makes several writes in a row (the exchange applying a life event):
    one flush of many rows costs little more than a flush of one. Inside the block, a
    query does not see the block's pending updates, so read before writing."""
    outer = session.info.get(_DEFER_FLUSH, False)
    session.info[_DEFER_FLUSH] = True
    try:
        yield
    finally:
        session.info[_DEFER_FLUSH] = outer
    if not outer:
        session.flush()


def _flush(session: Session) -> None:
    if not session.info.get(_DEFER_FLUSH, False):
        session.flush()


def _insert(session: Session, actor: Actor, row: RowT) -> RowT:
    session.add(row)
    session.flush()  # assigns the id the history row points at
    _record(session, actor, row, action="create", before=None, after=_snapshot(row))
    _flush(session)
    return row


def _apply(session: Session, actor: Actor, row: RowT, changes: Mapping[str, Any]) -> RowT:
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for key, value in changes.items():
        current = getattr(row, key)
        if current == value:
            continue
        before[key] = _jsonable(current)
        after[key] = _jsonable(value)
    if not after:
        return row
    for key in after:
        setattr(row, key, changes[key])
    _record(session, actor, row, action="update", before=before, after=after)
    _flush(session)
    return row


def _remove(session: Session, actor: Actor, row: Base) -> None:
    before = _snapshot(row)
    _record(session, actor, row, action="delete", before=before, after=None)
    session.delete(row)
    session.flush()


def history(session: Session, *, entity: str, entity_id: int) -> list[ChangeRead]:
    """The changes of one registry row, oldest first."""
    return [
        ChangeRead.model_validate(change)
        for change in repository.changes_of(session, entity=entity, entity_id=entity_id)
    ]


# ============================================================================ checking


class _Problems:
    """Collects every broken rule of one request, so the caller hears of all at once."""

    def __init__(self) -> None:
        self.details: list[dict[str, str]] = []

    def add(self, field: str, reason: str) -> None:
        self.details.append({"field": field, "reason": reason})

    def raise_if_any(self) -> None:
        if self.details:
            message = "; ".join(f"{d['field']}: {d['reason']}" for d in self.details)
            raise ValidationFailed(message, details=self.details)


def _conflict(field: str, reason: str) -> Conflict:
    return Conflict(f"{field}: {reason}", details=[{"field": field, "reason": reason}])


def _changes(model: type[Base], shape: type[BaseModel], data: Any) -> dict[str, Any]:
    """The fields a caller set, refusing an explicit null for a column that needs a value."""
    changes = parse(shape, data).model_dump(exclude_unset=True)
    problems = _Problems()
    columns = model.__table__.columns
    for key, value in changes.items():
        if value is None and not columns[key].nullable:
            problems.add(key, _("must not be empty"))
    problems.raise_if_any()
    return changes


def _grid(session: Session, grid_code: str) -> UnitRead | None:
    """The territorial unit of level grid with this code, if any (asked of territory)."""
    log: WriteLog | None = session.info.get(_WRITE_LOG)
    if log is not None and grid_code in log.grids:
        return log.grids[grid_code]
    try:
        unit: UnitRead | None = territory.get_unit(session, code=grid_code)
    except (NotFound, ValidationFailed):
        unit = None
    grid = unit if unit is not None and unit.level is Level.GRID else None
    if log is not None:
        log.grids[grid_code] = grid
    return grid


def _check_grid(session: Session, problems: _Problems, grid_code: str, field: str) -> None:
    if _grid(session, grid_code) is None:
        problems.add(field, _("no such grid"))


def _get(session: Session, model: type[RowT], row_id: int) -> RowT:
    row = repository.get_row(session, model, row_id)
    if row is None:
        raise NotFound(_("Not found."))
    return row


def _refer(
    session: Session, problems: _Problems, model: type[RowT], row_id: int | None, field: str
) -> RowT | None:
    """The row a field points at, or a problem when it does not exist."""
    if row_id is None:
        return None
    row = repository.get_row(session, model, row_id)
    if row is None:
        problems.add(field, _("does not exist"))
    return row


# ============================================================================ buildings


def get_building(session: Session, *, building_id: int) -> Building:
    """A building by id; NotFound when there is none."""
    return _get(session, Building, building_id)


def building_by_qr_token(session: Session, *, qr_token: str) -> Building:
    """The building whose QR plate carries this token; NotFound when there is none."""
    building = repository.building_by_qr_token(session, qr_token=qr_token)
    if building is None:
        raise NotFound(_("Not found."))
    return building


def create_building(
    session: Session, actor: Actor, *, data: BuildingCreate | Mapping[str, Any]
) -> Building:
    """Register a building and issue the token for its QR plate."""
    values = parse(BuildingCreate, data)
    problems = _Problems()
    _check_grid(session, problems, values.grid_code, "grid_code")
    problems.raise_if_any()
    return _insert(session, actor, Building(**values.model_dump(), qr_token=new_qr_token()))


def update_building(
    session: Session,
    actor: Actor,
    *,
    building_id: int,
    data: BuildingUpdate | Mapping[str, Any],
) -> Building:
    """Change a building's fields."""
    building = get_building(session, building_id=building_id)
    changes = _changes(Building, BuildingUpdate, data)
    problems = _Problems()
    if "grid_code" in changes and changes["grid_code"] != building.grid_code:
        _check_grid(session, problems, changes["grid_code"], "grid_code")
        if repository.count_units_of_building(session, building_id=building.id):
            raise _conflict("grid_code", _("the building has housing units in its grid"))
    if "floors" in changes:
        highest = repository.highest_unit_floor(session, building_id=building.id)
        if highest is not None and changes["floors"] < highest:
            problems.add("floors", _("lower than the floor of one of its units"))
    problems.raise_if_any()
    return _apply(session, actor, building, changes)


def delete_building(session: Session, actor: Actor, *, building_id: int) -> None:
    """Delete a building that has no housing units."""
    building = get_building(session, building_id=building_id)
    if repository.count_units_of_building(session, building_id=building.id):
        raise _conflict("building_id", _("the building still has housing units"))
    _remove(session, actor, building)


# ============================================================================ housing units


def get_housing_unit(session: Session, *, unit_id: int) -> HousingUnit:
    """A housing unit by id; NotFound when there is none."""
    return _get(session, HousingUnit, unit_id)


def create_housing_unit(
    session: Session, actor: Actor, *, data: HousingUnitCreate | Mapping[str, Any]
) -> HousingUnit:
    """Register a unit in a building; it takes the building's grid."""
    values = parse(HousingUnitCreate, data)
    problems = _Problems()
    building = _refer(session, problems, Building, values.building_id, "building_id")
    if building is not None and values.floor > building.floors:
        problems.add("floor", _("above the building's top floor"))
    problems.raise_if_any()
    assert building is not None  # noqa: S101 - guaranteed by the problems check above
    unit = HousingUnit(**values.model_dump(), grid_code=building.grid_code)
    return _insert(session, actor, unit)


def update_housing_unit(
    session: Session,
    actor: Actor,
    *,
    unit_id: int,
    data: HousingUnitUpdate | Mapping[str, Any],
) -> HousingUnit:
    """Change a unit's fields."""
    unit = get_housing_unit(session, unit_id=unit_id)
    changes = _changes(HousingUnit, HousingUnitUpdate, data)
    problems = _Problems()
    if "floor" in changes:
        building = get_building(session, building_id=unit.building_id)
        if changes["floor"] > building.floors:
            problems.add("floor", _("above the building's top floor"))
    problems.raise_if_any()
    return _apply(session, actor, unit, changes)


def delete_housing_unit(session: Session, actor: Actor, *, unit_id: int) -> None:
    """Delete a unit no household, residence or organisation points at."""
    unit = get_housing_unit(session, unit_id=unit_id)
    if repository.unit_is_referenced(session, unit_id=unit.id):
        raise _conflict("unit_id", _("households, residences or organisations use the unit"))
    _remove(session, actor, unit)


# ============================================================================ households


def get_household(session: Session, *, household_id: int) -> Household:
    """A household by id; NotFound when there is none."""
    return _get(session, Household, household_id)


def _check_household_place(
    session: Session, problems: _Problems, *, grid_code: str | None, unit_id: int | None
) -> str | None:
    """The household's grid: the given one, which must be the unit's when there is a unit."""
    unit = _refer(session, problems, HousingUnit, unit_id, "unit_id")
    if unit is not None:
        if grid_code is not None and grid_code != unit.grid_code:
            problems.add("grid_code", _("must be the grid of the housing unit"))
        grid_code = grid_code or unit.grid_code
    if grid_code is not None:
        _check_grid(session, problems, grid_code, "grid_code")
    return grid_code


def create_household(
    session: Session, actor: Actor, *, data: HouseholdCreate | Mapping[str, Any]
) -> Household:
    """Register a household (in its unit's grid when it has a unit)."""
    values = parse(HouseholdCreate, data)
    problems = _Problems()
    grid_code = _check_household_place(
        session, problems, grid_code=values.grid_code, unit_id=values.unit_id
    )
    problems.raise_if_any()
    household = Household(
        grid_code=grid_code, unit_id=values.unit_id, registration_type=values.registration_type
    )
    return _insert(session, actor, household)


def update_household(
    session: Session,
    actor: Actor,
    *,
    household_id: int,
    data: HouseholdUpdate | Mapping[str, Any],
) -> Household:
    """Change a household's unit, grid or registration type."""
    household = get_household(session, household_id=household_id)
    changes = _changes(Household, HouseholdUpdate, data)
    problems = _Problems()
    if "grid_code" in changes or "unit_id" in changes:
        unit_id = changes.get("unit_id", household.unit_id)
        grid_code = changes.get("grid_code")
        if grid_code is None and "unit_id" not in changes:
            grid_code = household.grid_code
        grid_code = _check_household_place(session, problems, grid_code=grid_code, unit_id=unit_id)
        if grid_code is not None and grid_code != household.grid_code:
            changes["grid_code"] = grid_code
            if repository.household_has_members(session, household_id=household.id):
                raise _conflict("grid_code", _("the household has members in its grid"))
    problems.raise_if_any()
    return _apply(session, actor, household, changes)


def delete_household(session: Session, actor: Actor, *, household_id: int) -> None:
    """Delete a household that has no members."""
    household = get_household(session, household_id=household_id)
    if repository.household_has_members(session, household_id=household.id):
        raise _conflict("household_id", _("the household still has members"))
    _remove(session, actor, household)


# ============================================================================ persons


def get_person(session: Session, *, person_id: int) -> Person:
    """A person by id; NotFound when there is none. For the access gateway only."""
    return _get(session, Person, person_id)


def person_by_ref(session: Session, *, ref: str) -> Person:
    """A person by opaque reference; NotFound when there is none. For the access gateway."""
    person = repository.person_by_ref(session, ref=ref)
    if person is None:
        raise NotFound(_("Not found."))
    return person


def _check_person_ties(
    session: Session,
    problems: _Problems,
    *,
    person_id: int | None,
    grid_code: str,
    household_id: int | None,
    relation_to_head: str | None,
    employer_id: int | None,
) -> None:
    household = _refer(session, problems, Household, household_id, "household_id")
    if household is not None:
        if household.grid_code != grid_code:
            problems.add("household_id", _("the household is in another grid"))
        if relation_to_head == "head" and repository.household_head_id(
            session, household_id=household.id, except_person_id=person_id
        ):
            problems.add("relation_to_head", _("the household already has a head"))
    _refer(session, problems, Organisation, employer_id, "employer_id")


def create_person(
    session: Session, actor: Actor, *, data: PersonCreate | Mapping[str, Any]
) -> Person:
    """Register a resident, with an opaque reference for URLs."""
    values = parse(PersonCreate, data)
    problems = _Problems()
    _check_grid(session, problems, values.grid_code, "grid_code")
    _check_person_ties(
        session,
        problems,
        person_id=None,
        grid_code=values.grid_code,
        household_id=values.household_id,
        relation_to_head=values.relation_to_head,
        employer_id=values.employer_id,
    )
    problems.raise_if_any()
    if repository.id_number_taken(session, id_number=values.id_number):
        raise _conflict("id_number", _("already registered"))
    return _insert(session, actor, Person(**values.model_dump(), ref=new_person_ref()))


def update_person(
    session: Session,
    actor: Actor,
    *,
    person_id: int,
    data: PersonUpdate | Mapping[str, Any],
) -> Person:
    """Change a resident's fields; the rules across fields are checked on the result.
    A new ID number brings its birth date and sex unless they are given too."""
    person = get_person(session, person_id=person_id)
    changes = _changes(Person, PersonUpdate, data)
    merged = {key: getattr(person, key) for key in PersonUpdate.model_fields} | changes
    if "id_number" in changes:
        if "birth_date" not in changes:
            merged["birth_date"] = None
        if "sex" not in changes:
            merged["sex"] = None
    try:
        birth_date, sex = check_person_consistency(
            id_number=merged["id_number"],
            birth_date=merged["birth_date"],
            sex=merged["sex"],
            status=merged["status"],
            died_on=merged["died_on"],
            household_id=merged["household_id"],
            relation_to_head=merged["relation_to_head"],
        )
    except (FieldProblem, IdNumberError) as exc:
        raise ValidationFailed.one(exc.field, exc.reason) from None
    if "id_number" in changes:
        changes["birth_date"], changes["sex"] = birth_date, sex
    problems = _Problems()
    if "grid_code" in changes and changes["grid_code"] != person.grid_code:
        _check_grid(session, problems, changes["grid_code"], "grid_code")
    # Only the ties touched by this change are checked again.
    household_touched = bool({"grid_code", "household_id", "relation_to_head"} & changes.keys())
    _check_person_ties(
        session,
        problems,
        person_id=person.id,
        grid_code=merged["grid_code"],
        household_id=merged["household_id"] if household_touched else None,
        relation_to_head=merged["relation_to_head"],
        employer_id=changes.get("employer_id"),
    )
    problems.raise_if_any()
    if "id_number" in changes and repository.id_number_taken(
        session, id_number=changes["id_number"], except_id=person.id
    ):
        raise _conflict("id_number", _("already registered"))
    return _apply(session, actor, person, changes)


def move_person_to_grid(session: Session, actor: Actor, *, person: Person, grid_code: str) -> None:
    """The person now lives in another grid (a move into a housing unit there: its grid is
    one): they take its code and leave their household, which lies in its members' grid.
    ``update_person`` with only the checks such a change can fail, which are none."""
    if grid_code == person.grid_code:
        return
    changes: dict[str, Any] = {"grid_code": grid_code}
    if person.household_id is not None:
        changes |= {"household_id": None, "relation_to_head": None}
    _apply(session, actor, person, changes)


def delete_person(session: Session, actor: Actor, *, person_id: int) -> None:
    """Delete a person entered by mistake (a death is an update of ``status``)."""
    person = get_person(session, person_id=person_id)
    if repository.person_has_residences(session, person_id=person.id):
        raise _conflict("person_id", _("the person still has residences"))
    _remove(session, actor, person)


# ============================================================================ residences


def get_residence(session: Session, *, residence_id: int) -> Residence:
    """A residence by id; NotFound when there is none."""
    return _get(session, Residence, residence_id)


def create_residence(
    session: Session, actor: Actor, *, data: ResidenceCreate | Mapping[str, Any]
) -> Residence:
    """Tie a person to a housing unit; the residence takes the unit's grid."""
    values = parse(ResidenceCreate, data)
    problems = _Problems()
    _refer(session, problems, Person, values.person_id, "person_id")
    unit = _refer(session, problems, HousingUnit, values.unit_id, "unit_id")
    problems.raise_if_any()
    assert unit is not None  # noqa: S101 - guaranteed by the problems check above
    residence = Residence(**values.model_dump(), grid_code=unit.grid_code)
    return _insert(session, actor, residence)


def update_residence(
    session: Session,
    actor: Actor,
    *,
    residence_id: int,
    data: ResidenceUpdate | Mapping[str, Any],
) -> Residence:
    """Change a residence's kind or period."""
    residence = get_residence(session, residence_id=residence_id)
    changes = _changes(Residence, ResidenceUpdate, data)
    since = changes.get("since", residence.since)
    until = changes.get("until", residence.until)
    if until is not None and until < since:
        raise ValidationFailed.one("until", _("before the start of the residence"))
    return _apply(session, actor, residence, changes)


def end_residence(session: Session, actor: Actor, *, residence_id: int, until: date) -> Residence:
    """End a residence on ``until`` (someone moved out)."""
    return update_residence(session, actor, residence_id=residence_id, data={"until": until})


def delete_residence(session: Session, actor: Actor, *, residence_id: int) -> None:
    """Delete a residence entered by mistake."""
    _remove(session, actor, get_residence(session, residence_id=residence_id))


# ============================================================================ components


def get_component(session: Session, *, component_id: int) -> Component:
    """A component by id; NotFound when there is none."""
    return _get(session, Component, component_id)


def _next_identifier(session: Session, *, grid_code: str, class_code: str) -> str:
    # Grid code (15) + class code (4) + a 6-digit serial within both: 25 characters.
    prefix = grid_code + class_code
    highest = repository.max_component_identifier(session, identifier_prefix=prefix)
    serial = 1
    if highest is not None and highest[len(prefix) :].isdigit():
        serial = int(highest[len(prefix) :]) + 1
    return f"{prefix}{serial:06d}"


def create_component(
    session: Session, actor: Actor, *, data: ComponentCreate | Mapping[str, Any]
) -> Component:
    """Register an urban component of a catalogue class."""
    values = parse(ComponentCreate, data)
    problems = _Problems()
    component_class = repository.get_component_class(session, code=values.class_code)
    if component_class is None:
        problems.add("class_code", _("unknown component class"))
    _check_grid(session, problems, values.grid_code, "grid_code")
    problems.raise_if_any()
    assert component_class is not None  # noqa: S101 - guaranteed by the problems check above
    identifier = values.identifier or _next_identifier(
        session, grid_code=values.grid_code, class_code=values.class_code
    )
    if repository.component_identifier_taken(session, identifier=identifier):
        raise _conflict("identifier", _("already used by another component"))
    component = Component(
        class_code=values.class_code,
        grid_code=values.grid_code,
        identifier=identifier,
        lon=values.lon,
        lat=values.lat,
        condition=values.condition,
        owner_department=values.owner_department or component_class.owner_department,
    )
    return _insert(session, actor, component)


def update_component(
    session: Session,
    actor: Actor,
    *,
    component_id: int,
    data: ComponentUpdate | Mapping[str, Any],
) -> Component:
    """Change a component's place, condition or owner."""
    component = get_component(session, component_id=component_id)
    changes = _changes(Component, ComponentUpdate, data)
    problems = _Problems()
    if "grid_code" in changes and changes["grid_code"] != component.grid_code:
        _check_grid(session, problems, changes["grid_code"], "grid_code")
    problems.raise_if_any()
    return _apply(session, actor, component, changes)


def delete_component(session: Session, actor: Actor, *, component_id: int) -> None:
    """Delete a component (removed from the street, or entered by mistake)."""
    _remove(session, actor, get_component(session, component_id=component_id))


# ============================================================================ organisations


def get_organisation(session: Session, *, organisation_id: int) -> Organisation:
    """An organisation by id; NotFound when there is none."""
    return _get(session, Organisation, organisation_id)


def _check_organisation_place(
    session: Session, problems: _Problems, *, grid_code: str, unit_id: int | None
) -> None:
    _check_grid(session, problems, grid_code, "grid_code")
    unit = _refer(session, problems, HousingUnit, unit_id, "unit_id")
    if unit is not None and unit.grid_code != grid_code:
        problems.add("unit_id", _("the housing unit is in another grid"))


def create_organisation(
    session: Session, actor: Actor, *, data: OrganisationCreate | Mapping[str, Any]
) -> Organisation:
    """Register an employer, shop or institution."""
    values = parse(OrganisationCreate, data)
    problems = _Problems()
    _check_organisation_place(session, problems, grid_code=values.grid_code, unit_id=values.unit_id)
    problems.raise_if_any()
    if values.uscc is not None and repository.uscc_taken(session, uscc=values.uscc):
        raise _conflict("uscc", _("already registered"))
    return _insert(session, actor, Organisation(**values.model_dump()))


def update_organisation(
    session: Session,
    actor: Actor,
    *,
    organisation_id: int,
    data: OrganisationUpdate | Mapping[str, Any],
) -> Organisation:
    """Change an organisation's fields."""
    organisation = get_organisation(session, organisation_id=organisation_id)
    changes = _changes(Organisation, OrganisationUpdate, data)
    problems = _Problems()
    if {"grid_code", "unit_id"} & changes.keys():
        _check_organisation_place(
            session,
            problems,
            grid_code=changes.get("grid_code", organisation.grid_code),
            unit_id=changes.get("unit_id", organisation.unit_id),
        )
    problems.raise_if_any()
    uscc = changes.get("uscc")
    if uscc is not None and repository.uscc_taken(session, uscc=uscc, except_id=organisation.id):
        raise _conflict("uscc", _("already registered"))
    return _apply(session, actor, organisation, changes)


def delete_organisation(session: Session, actor: Actor, *, organisation_id: int) -> None:
    """Delete an organisation no person names as employer."""
    organisation = get_organisation(session, organisation_id=organisation_id)
    if repository.organisation_has_employees(session, organisation_id=organisation.id):
        raise _conflict("organisation_id", _("people name it as their employer"))
    _remove(session, actor, organisation)


# ============================================================================ counts


@dataclass(frozen=True)
class GridCounts:
    """What one grid holds: counts only, never personal data."""

    buildings: int
    housing_units: int
    households: int
    residents: int
    components: dict[str, int]


@dataclass(frozen=True)
class GridSummary:
    """A grid's names and its counts."""

    code: str
    name_zh: str
    name_en: str
    buildings: int
    housing_units: int
    households: int
    residents: int
    components: dict[str, int]


# Scopes are territorial units: a district (6 digits), street (9), community (12) or grid (15).
_UNIT_CODE_LENGTHS = (6, 9, 12, 15)


def _assemble(
    grid_codes: list[str], rows: list[tuple[str, str, Any, int]]
) -> dict[str, GridCounts]:
    """Counts per grid (every one of ``grid_codes``) from ``repository.grid_count_rows``."""
    wanted = set(grid_codes)
    counts: dict[str, dict[str, int]] = {}
    component_rows: list[tuple[str, str, int]] = []
    # Every catalogue class appears, with 0 when the grid has none; the table (which the
    # components' class codes point at) is the truth, the file fills in an unsynced one.
    slugs = {item.code: item.slug for item in load_component_classes()}
    for kind, code, detail, n in rows:
        if kind == "class":
            slugs[code] = detail
        elif code not in wanted:
            continue  # a grid in the scanned range but not listed by territory
        elif kind == "components":
            component_rows.append((code, detail, n))
        else:
            counts.setdefault(code, {})[kind] = n
    zero_components = dict.fromkeys(sorted(set(slugs.values())), 0)
    per_grid: dict[str, dict[str, int]] = {}
    for grid_code, class_code, n in component_rows:
        components = per_grid.setdefault(grid_code, dict(zero_components))
        slug = slugs.get(class_code, class_code)
        components[slug] = components.get(slug, 0) + n
    result: dict[str, GridCounts] = {}
    for code in sorted(wanted):
        grid = counts.get(code, {})
        result[code] = GridCounts(
            buildings=grid.get("buildings", 0),
            housing_units=grid.get("housing_units", 0),
            households=grid.get("households", 0),
            residents=grid.get("residents", 0),
            components=per_grid.get(code) or dict(zero_components),
        )
    return result


def counts_by_grid(session: Session, *, code_prefix: str) -> dict[str, GridCounts]:
    """Counts of every grid under a territorial unit's code (zeros for empty grids; no grids,
    and so an empty answer, for a code no unit has)."""
    if not (
        code_prefix.isascii() and code_prefix.isdigit() and len(code_prefix) in _UNIT_CODE_LENGTHS
    ):
        raise ValidationFailed.one("code_prefix", _("must be a code of 6, 9, 12 or 15 digits"))
    try:
        grids = territory.grids_under(session, code=code_prefix)
    except NotFound:
        return {}
    grid_codes = [grid.code for grid in grids]
    if not grid_codes:
        return {}
    # A city's grids share a shorter prefix than its code (440100 -> 4401...): scan the
    # range every listed grid lies in.
    scan_prefix = os.path.commonprefix(grid_codes)
    return _assemble(grid_codes, repository.grid_count_rows(session, code_prefix=scan_prefix))


def grid_summary(session: Session, *, grid_code: str) -> GridSummary:
    """A grid's names and counts; NotFound for an unknown grid."""
    if len(grid_code) != 15 or not grid_code.isascii() or not grid_code.isdigit():
        raise ValidationFailed.one("code", _("must be 15 digits"))
    grid = _grid(session, grid_code)
    if grid is None:
        raise NotFound(_("No such grid."))
    rows = repository.grid_count_rows(session, code_prefix=grid_code)
    counts = _assemble([grid_code], rows)[grid_code]
    return GridSummary(
        code=grid_code,
        name_zh=grid.name_zh,
        name_en=grid.name_en,
        buildings=counts.buildings,
        housing_units=counts.housing_units,
        households=counts.households,
        residents=counts.residents,
        components=counts.components,
    )


# ============================================================================ exchange
# What the data exchange (``citygrid.exchange``) needs of the registry: the persons named by
# ID number in published events and batches, and the writes life events cause, each with its
# history like every other write here.


class PersonKey(NamedTuple):
    """The keys of a person named by ID number, and the household ties the exchange needs
    (a named tuple: the bulk import builds one per row)."""

    id: int
    ref: str
    grid_code: str
    status: LifeStatus
    household_id: int | None
    relation_to_head: str | None


_LIFE_STATUSES: dict[str, LifeStatus] = {status.value: status for status in LifeStatus}


def person_keys(session: Session, *, id_numbers: Sequence[str]) -> dict[str, PersonKey]:
    """The keys of the persons holding these ID numbers, by ID number (unknown ones absent)."""
    statuses = _LIFE_STATUSES
    rows: Iterable[Sequence[Any]] = repository.person_keys_by_id_numbers(
        session, id_numbers=id_numbers
    )
    return {
        id_number: PersonKey(person_id, ref, grid_code, statuses[status], household_id, relation)
        for id_number, person_id, ref, grid_code, status, household_id, relation in rows
    }


def person_key_rows(session: Session, *, id_numbers: Sequence[str]) -> dict[str, Sequence[Any]]:
    """The persons holding these ID numbers as the driver's rows, by ID number (unknown ones
    absent): ``(id_number, id, ref, grid_code, status)``, the status as its text. The keys
    of ``person_keys`` without the household ties and without an object per person: for the
    bulk import, which looks up thousands a batch and reads them column by column."""
    rows = repository.person_key_rows_by_id_numbers(session, id_numbers=id_numbers)
    return dict(zip(map(itemgetter(0), rows), rows, strict=True))


def person_key(session: Session, *, person_id: int) -> PersonKey:
    """The keys of a person by id (one row read); NotFound when there is none."""
    row = repository.person_key_by_id(session, person_id=person_id)
    if row is None:
        raise NotFound(_("Not found."))
    ref, grid_code, status, household_id, relation_to_head = tuple(row)
    return PersonKey(
        id=person_id,
        ref=ref,
        grid_code=grid_code,
        status=LifeStatus(status),
        household_id=household_id,
        relation_to_head=relation_to_head,
    )


def person_keys_by_ids(session: Session, *, person_ids: Sequence[int]) -> dict[int, PersonKey]:
    """The keys of the persons with these ids, by id (one query; unknown ones absent)."""
    statuses = _LIFE_STATUSES
    rows: Iterable[Sequence[Any]] = repository.person_keys_by_ids(
        session, person_ids=list(dict.fromkeys(person_ids))
    )
    return {
        person_id: PersonKey(person_id, ref, grid_code, statuses[status], household_id, relation)
        for person_id, ref, grid_code, status, household_id, relation in rows
    }


def household_grid_codes(session: Session, *, household_ids: Sequence[int]) -> dict[int, str]:
    """The grid of each of these households, by id (one query; unknown ones absent)."""
    return repository.household_grid_codes(
        session, household_ids=list(dict.fromkeys(household_ids))
    )


def person_by_id_number(session: Session, *, id_number: str) -> Person:
    """The person holding this ID number; NotFound when there is none. For the exchange."""
    person = repository.person_by_id_number(session, id_number=id_number)
    if person is None:
        raise NotFound(_("Not found."))
    return person


def persons_by_id_numbers(
    session: Session, *, id_numbers: Sequence[str], refresh: bool = False
) -> list[Person]:
    """The persons holding these ID numbers (unknown ones absent); ``refresh`` reloads those
    already in the session (read again after taking a lock). For the exchange."""
    return repository.persons_by_id_numbers(session, id_numbers=id_numbers, refresh=refresh)


def mark_deceased(session: Session, actor: Actor, *, person_id: int, died_on: date) -> Person:
    """Record a death: the person is deceased from ``died_on``."""
    return update_person(
        session,
        actor,
        person_id=person_id,
        data={"status": LifeStatus.DECEASED, "died_on": died_on},
    )


def current_residences(session: Session, *, person_id: int) -> list[Residence]:
    """The person's residences that have not ended, oldest first."""
    return repository.open_residences(session, person_id=person_id)


ResidenceRow = repository.ResidenceRow


def current_residence_rows(
    session: Session, *, person_ids: Sequence[int]
) -> dict[int, list[ResidenceRow]]:
    """``{person id: residences that have not ended, oldest first}`` of many persons, as
    plain rows (for ``open_residence`` / ``end_residences``)."""
    return repository.open_residence_rows(session, person_ids=person_ids)


def open_residence(
    session: Session,
    actor: Actor,
    *,
    person: Person,
    unit_id: int,
    grid_code: str,
    kind: ResidenceKind,
    since: date,
) -> ResidenceRow:
    """Tie the person to a housing unit whose grid the caller has read (``unit_grid_codes``):
    ``create_residence`` in one statement, for a caller that writes many (the exchange's
    moves); the same history row and access-log entry. The session holds no object of it."""
    now = utcnow()
    residence_id = repository.insert_residence(
        session,
        {
            "person_id": person.id,
            "unit_id": unit_id,
            "grid_code": grid_code,
            "kind": kind,
            "since": since,
            "until": None,
            "created_at": now,
            "updated_at": now,
        },
    )
    row = ResidenceRow(residence_id, person.id, unit_id, grid_code, kind, since, None)
    after = {key: _jsonable(value) for key, value in row._asdict().items()}
    _history(
        session,
        actor,
        model=Residence,
        row_id=residence_id,
        grid_code=grid_code,
        action="create",
        before=None,
        after=after,
    )
    _log_access(
        session,
        actor,
        entity="residence",
        row_id=residence_id,
        action="create",
        subjects=[person.ref],
        classes=_residence_classes(kind),
        columns=sorted(_written_columns("create", None, after)),
    )
    return row


def end_residences(
    session: Session, actor: Actor, *, person: Person, ends: Sequence[tuple[ResidenceRow, date]]
) -> None:
    """End the person's residences, each on its day (``end_residence`` for rows read with
    ``current_residence_rows``): one statement, the same history rows and access-log
    entries. A residence that ends where it already ends is left alone."""
    now = utcnow()
    writes = []
    for residence, until in ends:
        if residence.until == until:
            continue
        if until < residence.since:
            raise ValidationFailed.one("until", _("before the start of the residence"))
        writes.append({"residence_id": residence.id, "new_until": until, "moment": now})
        before, after = {"until": _jsonable(residence.until)}, {"until": _jsonable(until)}
        _history(
            session,
            actor,
            model=Residence,
            row_id=residence.id,
            grid_code=residence.grid_code,
            action="update",
            before=before,
            after=after,
        )
        _log_access(
            session,
            actor,
            entity="residence",
            row_id=residence.id,
            action="update",
            subjects=[person.ref],
            classes=_residence_classes(residence.kind),
            columns=["until"],
        )
    repository.end_residence_rows(session, writes)
    # A residence the session holds as an object (loaded by someone else) is read again.
    for write in writes:
        held = session.identity_map.get(identity_key(Residence, write["residence_id"]))
        if held is not None:
            session.expire(held)


def unit_grid_codes(session: Session, *, unit_ids: Sequence[int]) -> dict[int, str]:
    """``{unit id: grid code}`` of the housing units that exist among ``unit_ids``."""
    return repository.unit_grid_codes(session, unit_ids=unit_ids)


def set_marital_statuses(
    session: Session, actor: Actor, *, statuses: Mapping[int, MaritalStatus]
) -> int:
    """Set the marital status of many persons (by id) as family planning published it, with
    their history; returns how many changed."""
    changed = 0
    # Persons the session holds already need no query (the exchange's marriage events).
    held = [session.identity_map.get(identity_key(Person, person_id)) for person_id in statuses]
    persons = [person for person in held if isinstance(person, Person)]
    missing = [person_id for person_id in statuses if person_id not in {p.id for p in persons}]
    if missing:
        persons.extend(repository.persons_by_ids(session, person_ids=missing))
    for person in persons:
        status = MaritalStatus(statuses[person.id])
        if person.marital_status == status:
            continue
        before = {"marital_status": _jsonable(person.marital_status)}
        person.marital_status = status
        _record(
            session,
            actor,
            person,
            action="update",
            before=before,
            after={"marital_status": status.value},
        )
        changed += 1
    _flush(session)
    return changed


# ============================================================================ geocoding


@dataclass(frozen=True, slots=True)
class AddressPoint:
    """Where a building with a given address stands."""

    address: str
    lon: float
    lat: float


GEOCODE_CANDIDATES = 5


def geocode_address(session: Session, *, address: str) -> list[AddressPoint]:
    """The buildings whose address is this text (spaces aside), at most a few, so that the
    caller can tell a unique match from an ambiguous one. Buildings are not personal data."""
    spelled = " ".join(address.split())
    compact = "".join(address.split())
    if not compact:
        return []
    rows = repository.buildings_at_address(
        session,
        spellings=[address.strip(), spelled, compact],
        compact=compact,
        limit=GEOCODE_CANDIDATES,
    )
    return [AddressPoint(*row) for row in rows]
