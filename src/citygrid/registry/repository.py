"""Every query of the registry. Nothing else in the registry builds a SELECT."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any, NamedTuple, TypeVar
from typing import cast as typing_cast

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Date,
    FromClause,
    Integer,
    Row,
    Select,
    String,
    Table,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session

from citygrid.kit.models import Base
from citygrid.registry.models import (
    Building,
    Component,
    ComponentClass,
    Household,
    HousingUnit,
    LifeStatus,
    Organisation,
    Person,
    RegistryChange,
    Residence,
    ResidenceKind,
)
from citygrid.registry.schemas import ComponentClassIn

# ----------------------------------------------------------------------------- prefixes


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest digit string of the prefix's length above every code under the prefix.

    Codes are digit strings, so "440104" -> "440105" and "440109" -> "440110"; an all-nines
    prefix has no upper bound. Staying within digits keeps the range correct under any
    database collation (a ':' sentinel might sort differently under a linguistic one).
    """
    if not prefix:
        return None
    upper = str(int(prefix) + 1).zfill(len(prefix))
    return upper if len(upper) == len(prefix) else None


def code_range(column: InstrumentedAttribute[str], prefix: str) -> ColumnElement[bool]:
    """``column`` starts with ``prefix``, as a range the column's B-tree index can serve."""
    upper = prefix_upper_bound(prefix)
    lower_condition = column >= prefix
    if upper is None:
        return lower_condition
    return and_(lower_condition, column < upper)


# ----------------------------------------------------------------------------- counts

# Every grid-coded row under a prefix has a code between the prefix and the prefix padded
# with nines (grid codes have 15 digits): an inclusive range that a B-tree index serves under
# any collation, without a special case for a prefix of nines.
_LOWER = bindparam("lower", type_=String)
_UPPER = bindparam("upper", type_=String)


def grid_code_bounds(code_prefix: str) -> dict[str, str]:
    """The ``lower`` / ``upper`` parameters of the count statements for a code prefix."""
    return {"lower": code_prefix, "upper": code_prefix.ljust(15, "9")}


def _text(value: str | None) -> ColumnElement[str | None]:
    if value is None:
        return cast(null(), String)
    return literal_column(f"'{value}'", String)  # a fixed word of ours, never input


def _grid_count(kind: str, table: FromClause, *conditions: ColumnElement[bool]) -> Select:
    grid_code = table.c.grid_code
    return (
        select(
            _text(kind).label("kind"),
            grid_code.label("code"),
            _text(None).label("detail"),
            func.count().label("n"),
        )
        .where(grid_code.between(_LOWER, _UPPER), *conditions)
        .group_by(grid_code)
    )


def count_statements() -> dict[str, Select]:
    """The parts of the counts statement by name, each a GROUP BY over a grid_code range
    (parameters ``lower`` and ``upper``, see ``grid_code_bounds``); also for checking plans."""
    components = Component.__table__
    classes = ComponentClass.__table__
    persons = Person.__table__
    return {
        "buildings": _grid_count("buildings", Building.__table__),
        "housing_units": _grid_count("housing_units", HousingUnit.__table__),
        "households": _grid_count("households", Household.__table__),
        "residents": _grid_count("residents", persons, persons.c.status == LifeStatus.ALIVE.value),
        "components": select(
            _text("components"),
            components.c.grid_code,
            components.c.class_code,
            func.count(),
        )
        .where(components.c.grid_code.between(_LOWER, _UPPER))
        .group_by(components.c.grid_code, components.c.class_code),
        "classes": select(
            _text("class"), classes.c.code, classes.c.slug, literal_column("0", Integer)
        ),
    }


@lru_cache(maxsize=1)
def _counts_statement() -> CompoundSelect:
    # One statement, one round trip: the summary is the hot path of every dashboard.
    return union_all(*count_statements().values())


def grid_count_rows(session: Session, *, code_prefix: str) -> list[tuple[str, str, Any, int]]:
    """Rows ``(kind, code, detail, n)`` for the grids under a prefix: ``("buildings" |
    "housing_units" | "households" | "residents", grid code, None, n)`` for each grid with
    any; ``("components", grid code, class code, n)``; and ``("class", class code, slug, 0)``
    for each catalogue class in the table."""
    rows = session.execute(_counts_statement(), grid_code_bounds(code_prefix))
    return [(kind, code, detail, n) for kind, code, detail, n in rows]


# ----------------------------------------------------------------------------- catalogue


def component_class_slugs(session: Session) -> dict[str, str]:
    """``{class code: slug}`` of every class in the table."""
    rows = session.execute(select(ComponentClass.code, ComponentClass.slug))
    return {code: slug for code, slug in rows}


def get_component_class(session: Session, *, code: str) -> ComponentClass | None:
    """The component class with this code, if any."""
    return session.get(ComponentClass, code)


def upsert_component_classes(session: Session, classes: Sequence[ComponentClassIn]) -> int:
    """Insert missing classes and update changed ones; returns how many rows changed."""
    existing = {row.code: row for row in session.scalars(select(ComponentClass))}
    changed = 0
    for item in classes:
        values = item.model_dump()
        row = existing.get(item.code)
        if row is None:
            session.add(ComponentClass(**values))
            changed += 1
            continue
        if any(getattr(row, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            changed += 1
    session.flush()
    return changed


# ----------------------------------------------------------------------------- rows

RowT = TypeVar("RowT", bound=Base)


def get_row(session: Session, model: type[RowT], row_id: int) -> RowT | None:
    """The row of ``model`` with this primary key, if any."""
    return session.get(model, row_id)


def building_by_qr_token(session: Session, *, qr_token: str) -> Building | None:
    """The building whose plate carries this token, if any."""
    return session.scalars(select(Building).where(Building.qr_token == qr_token)).first()


def person_by_ref(session: Session, *, ref: str) -> Person | None:
    """The person with this opaque reference, if any."""
    return session.scalars(select(Person).where(Person.ref == ref)).first()


def _exists(session: Session, *conditions: ColumnElement[bool]) -> bool:
    return session.execute(select(1).where(*conditions).limit(1)).first() is not None


def id_number_taken(session: Session, *, id_number: str, except_id: int | None = None) -> bool:
    """True when another person holds this ID number."""
    conditions = [Person.id_number == id_number]
    if except_id is not None:
        conditions.append(Person.id != except_id)
    return _exists(session, *conditions)


def uscc_taken(session: Session, *, uscc: str, except_id: int | None = None) -> bool:
    """True when another organisation holds this unified social credit code."""
    conditions = [Organisation.uscc == uscc]
    if except_id is not None:
        conditions.append(Organisation.id != except_id)
    return _exists(session, *conditions)


def component_identifier_taken(session: Session, *, identifier: str) -> bool:
    """True when a component carries this identifier."""
    return _exists(session, Component.identifier == identifier)


def max_component_identifier(session: Session, *, identifier_prefix: str) -> str | None:
    """The greatest identifier that starts with the prefix (digits only after it)."""
    statement = select(func.max(Component.identifier)).where(
        code_range(Component.identifier, identifier_prefix)
    )
    return session.execute(statement).scalar_one()


def household_head_id(
    session: Session, *, household_id: int, except_person_id: int | None = None
) -> int | None:
    """The id of the household's head (other than ``except_person_id``), if any."""
    conditions = [Person.household_id == household_id, Person.relation_to_head == "head"]
    if except_person_id is not None:
        conditions.append(Person.id != except_person_id)
    return session.execute(select(Person.id).where(*conditions).limit(1)).scalar_one_or_none()


def count_units_of_building(session: Session, *, building_id: int) -> int:
    """How many housing units the building has."""
    statement = select(func.count()).where(HousingUnit.building_id == building_id)
    return session.execute(statement).scalar_one()


def highest_unit_floor(session: Session, *, building_id: int) -> int | None:
    """The highest floor of any unit in the building."""
    statement = select(func.max(HousingUnit.floor)).where(HousingUnit.building_id == building_id)
    return session.execute(statement).scalar_one()


def unit_is_referenced(session: Session, *, unit_id: int) -> bool:
    """True when a household, residence or organisation points at the unit."""
    return (
        _exists(session, Household.unit_id == unit_id)
        or _exists(session, Residence.unit_id == unit_id)
        or _exists(session, Organisation.unit_id == unit_id)
    )


def household_has_members(session: Session, *, household_id: int) -> bool:
    """True when a person belongs to the household."""
    return _exists(session, Person.household_id == household_id)


def person_has_residences(session: Session, *, person_id: int) -> bool:
    """True when the person has a residence (current or past)."""
    return _exists(session, Residence.person_id == person_id)


def organisation_has_employees(session: Session, *, organisation_id: int) -> bool:
    """True when a person names the organisation as employer."""
    return _exists(session, Person.employer_id == organisation_id)


def changes_of(session: Session, *, entity: str, entity_id: int) -> list[RegistryChange]:
    """The history of one row, oldest first."""
    statement = (
        select(RegistryChange)
        .where(RegistryChange.entity == entity, RegistryChange.entity_id == entity_id)
        .order_by(RegistryChange.id)
    )
    return list(session.scalars(statement))


# ----------------------------------------------------------------------------- scoped persons
# The queries of the access gateway (``citygrid.access.gateway``), its only caller: every one
# filters by the caller's territorial scopes in SQL, as OR-ed ranges on the indexed grid code.
# Columns are selected one by one (no ORM entities) and enum/date columns come back as the
# stored text where the driver allows it: the gateway masks and serialises them directly.
# Statements are built once per shape (which criteria, columns, order) with bound parameters
# and cached: building a statement with its residence join costs more than running it.

_PERSONS = Person.__table__
_CURRENT = Residence.__table__.alias("current_residence")
_UNITS = HousingUnit.__table__.alias("residence_unit")
_BUILDINGS = Building.__table__.alias("residence_building")
_TODAY = bindparam("today", type_=Date())
_GRID_CODE_LENGTH = 15

#: Columns of the persons table the gateway may select, by the name it uses.
PERSON_COLUMNS: dict[str, ColumnElement[Any]] = {
    "id": _PERSONS.c.id,
    "ref": _PERSONS.c.ref,
    "grid_code": _PERSONS.c.grid_code,
    "name": _PERSONS.c.name,
    "id_number": _PERSONS.c.id_number,
    "sex": type_coerce(_PERSONS.c.sex, String()),
    "birth_date": type_coerce(_PERSONS.c.birth_date, String()),
    "ethnicity": _PERSONS.c.ethnicity,
    "status": type_coerce(_PERSONS.c.status, String()),
    "mobile": _PERSONS.c.mobile,
    "landline": _PERSONS.c.landline,
    "population_type": type_coerce(_PERSONS.c.population_type, String()),
    "household_ref": _PERSONS.c.household_id,
    "relation_to_head": _PERSONS.c.relation_to_head,
    "marital_status": type_coerce(_PERSONS.c.marital_status, String()),
}
#: Columns of the person's current residence (joined only when one of them is selected).
RESIDENCE_COLUMNS: dict[str, ColumnElement[Any]] = {
    # The address of a residence: the building's address and the unit's number.
    "address": (_BUILDINGS.c.address + " " + _UNITS.c.number),
    "unit_id": _UNITS.c.id,
    "building_id": _UNITS.c.building_id,
}


@dataclass(frozen=True)
class PersonCriteria:
    """Which persons a gateway query is about. ``scopes`` always apply; the rest are ANDed.

    ``equals`` holds (column name, value) pairs; ``name`` matches exactly or, with
    ``name_prefix``, as a prefix (a range on the name, so ``%`` and ``_`` are plain text).
    """

    scopes: tuple[str, ...]
    grid_code: str | None = None
    building_id: int | None = None
    unit_id: int | None = None
    household_id: int | None = None
    ref: str | None = None
    name: str | None = None
    name_prefix: bool = False
    id_number: str | None = None
    equals: tuple[tuple[str, str], ...] = ()
    refs: tuple[str, ...] = ()  # any of these references (a task list's subjects)


def scope_condition(column: ColumnElement[str], scopes: Sequence[str]) -> ColumnElement[bool]:
    """``column`` starts with one of the code prefixes: an OR of ranges its index serves
    (false when there is no prefix: no scope sees nothing)."""
    ranges: list[ColumnElement[bool]] = []
    for prefix in dict.fromkeys(scopes):
        upper = prefix_upper_bound(prefix)
        ranges.append(column >= prefix if upper is None else and_(column >= prefix, column < upper))
    if not ranges:
        return false()
    return ranges[0] if len(ranges) == 1 else or_(*ranges)


def text_prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` in code point order
    (None when there is none): ``"张"`` -> ``"弢"``, the next character."""
    while prefix:
        code = ord(prefix[-1]) + 1
        if 0xD800 <= code <= 0xDFFF:  # surrogates cannot be stored: skip to the next scalar
            code = 0xE000
        if code <= 0x10FFFF:
            return prefix[:-1] + chr(code)
        prefix = prefix[:-1]
    return None


def _current_residence_id() -> Any:
    # A person's current residence: not ended by today; where they actually live before
    # where they are registered; the latest move first.
    residence = Residence.__table__.alias("candidate_residence")
    return (
        select(residence.c.id)
        .where(
            residence.c.person_id == _PERSONS.c.id,
            or_(residence.c.until.is_(None), residence.c.until >= _TODAY),
        )
        .order_by(
            case((residence.c.kind == "registered_address", 1), else_=0),
            residence.c.since.desc(),
            residence.c.id.desc(),
        )
        .limit(1)
        .correlate(_PERSONS)
        .scalar_subquery()
    )


def _has_residence() -> ColumnElement[bool]:
    # Whether the person has a current residence, without joining it (one index probe).
    residence = Residence.__table__.alias("any_residence")
    return (
        select(residence.c.id)
        .where(
            residence.c.person_id == _PERSONS.c.id,
            or_(residence.c.until.is_(None), residence.c.until >= _TODAY),
        )
        .correlate(_PERSONS)
        .exists()
    )


#: Whether the person has a current residence (selected without the residence join).
PERSON_COLUMNS["has_residence"] = _has_residence()


def _placed(placement: str) -> ColumnElement[bool]:
    # Persons with a current residence in the building or unit: lets the planner start from
    # there (indexed) rather than from the whole scope ...
    residence = Residence.__table__.alias("placed_residence")
    unit = HousingUnit.__table__.alias("placed_unit")
    placed = unit.c.building_id if placement == "building_id" else unit.c.id
    return and_(
        _PERSONS.c.id.in_(
            select(residence.c.person_id)
            .join(unit, unit.c.id == residence.c.unit_id)
            .where(
                placed == bindparam(placement),
                or_(residence.c.until.is_(None), residence.c.until >= _TODAY),
            )
        ),
        # ... and it is the residence the answer shows (not an older one that also lasts).
        RESIDENCE_COLUMNS[placement] == bindparam(placement),
    )


# The shape of a query: what decides its SQL text (values travel as parameters).
_Shape = tuple[Any, ...]


def _shape_and_parameters(criteria: PersonCriteria, today: date) -> tuple[_Shape, dict[str, Any]]:
    parameters: dict[str, Any] = {"today": today}
    bounded: list[str] = []
    for index, prefix in enumerate(dict.fromkeys(criteria.scopes)):
        upper = prefix_upper_bound(prefix)
        parameters[f"scope_{index}"] = prefix
        if len(prefix) == _GRID_CODE_LENGTH:
            # A whole grid: equality, which planners estimate far better than a range (SQLite
            # would otherwise walk the name index for a common surname inside one grid).
            bounded.append("grid")
            continue
        if upper is not None:
            parameters[f"scope_{index}_upper"] = upper
        bounded.append("range" if upper is not None else "open")
    for name in ("grid_code", "building_id", "unit_id", "household_id", "ref", "id_number"):
        value = getattr(criteria, name)
        if value is not None:
            parameters[name] = value
    name_mode = None
    if criteria.name is not None:
        parameters["name"] = criteria.name
        name_mode = "exact"
        if criteria.name_prefix:
            upper = text_prefix_upper_bound(criteria.name)
            name_mode = "prefix" if upper is not None else "prefix_unbounded"
            if upper is not None:
                parameters["name_upper"] = upper
    for index, (_column, value) in enumerate(criteria.equals):
        parameters[f"equals_{index}"] = value
    shape = (
        tuple(bounded),
        tuple(
            name in parameters
            for name in ("grid_code", "building_id", "unit_id", "household_id", "ref", "id_number")
        ),
        name_mode,
        tuple(column for column, _value in criteria.equals),
        bool(criteria.refs),
    )
    if criteria.refs:
        parameters["refs"] = list(dict.fromkeys(criteria.refs))
    return shape, parameters


def _conditions(shape: _Shape, dialect: str) -> list[ColumnElement[bool]]:
    bounded, present, name_mode, equals, has_refs = shape
    ranges: list[ColumnElement[bool]] = []
    for index, kind in enumerate(bounded):
        prefix = bindparam(f"scope_{index}", type_=String())
        if kind == "grid":
            ranges.append(_PERSONS.c.grid_code == prefix)
        elif kind == "range":
            upper = _PERSONS.c.grid_code < bindparam(f"scope_{index}_upper", type_=String())
            ranges.append(and_(_PERSONS.c.grid_code >= prefix, upper))
        else:
            ranges.append(_PERSONS.c.grid_code >= prefix)
    conditions: list[ColumnElement[bool]] = [
        false() if not ranges else ranges[0] if len(ranges) == 1 else or_(*ranges)
    ]
    has_grid, has_building, has_unit, has_household, has_ref, has_id_number = present
    if has_grid:
        conditions.append(_PERSONS.c.grid_code == bindparam("grid_code", type_=String()))
    if has_household:
        conditions.append(_PERSONS.c.household_id == bindparam("household_id"))
    if has_ref:
        conditions.append(_PERSONS.c.ref == bindparam("ref", type_=String()))
    if has_id_number:
        conditions.append(_PERSONS.c.id_number == bindparam("id_number", type_=String()))
    if has_refs:
        conditions.append(_PERSONS.c.ref.in_(bindparam("refs", expanding=True)))
    if name_mode == "exact":
        conditions.append(_PERSONS.c.name == bindparam("name", type_=String()))
    elif name_mode is not None:
        # Ranges on text mean "starts with" only in code point order: SQLite compares bytes;
        # PostgreSQL's database collation may be linguistic, so name the "C" collation there.
        name = _PERSONS.c.name.collate("C") if dialect == "postgresql" else _PERSONS.c.name
        conditions.append(name >= bindparam("name", type_=String()))
        if name_mode == "prefix":
            conditions.append(name < bindparam("name_upper", type_=String()))
    for index, column in enumerate(equals):
        conditions.append(PERSON_COLUMNS[column] == bindparam(f"equals_{index}", type_=String()))
    if has_building:
        conditions.append(_placed("building_id"))
    if has_unit:
        conditions.append(_placed("unit_id"))
    return conditions


def _persons_from(with_residence: bool) -> FromClause:
    if not with_residence:
        return _PERSONS
    return (
        _PERSONS.outerjoin(_CURRENT, _CURRENT.c.id == _current_residence_id())
        .outerjoin(_UNITS, _UNITS.c.id == _CURRENT.c.unit_id)
        .outerjoin(_BUILDINGS, _BUILDINGS.c.id == _UNITS.c.building_id)
    )


@lru_cache(maxsize=512)
def _rows_statement(
    dialect: str,
    shape: _Shape,
    columns: tuple[str, ...],
    order_by: tuple[tuple[str, bool], ...],
    limited: bool,
) -> Select[Any]:
    has_building, has_unit = shape[1][1], shape[1][2]
    with_residence = has_building or has_unit or any(c in RESIDENCE_COLUMNS for c in columns)
    selected = [
        (PERSON_COLUMNS[name] if name in PERSON_COLUMNS else RESIDENCE_COLUMNS[name]).label(name)
        for name in columns
    ]
    ordering = [
        PERSON_COLUMNS[name].desc() if descending else PERSON_COLUMNS[name]
        for name, descending in order_by
    ]
    statement = (
        select(*selected)
        .select_from(_persons_from(with_residence))
        .where(*_conditions(shape, dialect))
        .order_by(*ordering, _PERSONS.c.id)
    )
    if limited:
        statement = statement.limit(bindparam("limit")).offset(bindparam("offset"))
    return statement


@lru_cache(maxsize=256)
def _count_statement(dialect: str, shape: _Shape) -> Select[Any]:
    has_building, has_unit = shape[1][1], shape[1][2]
    return (
        select(func.count())
        .select_from(_persons_from(has_building or has_unit))
        .where(*_conditions(shape, dialect))
    )


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def scoped_person_rows(
    session: Session,
    criteria: PersonCriteria,
    *,
    columns: Sequence[str],
    today: date,
    order_by: Sequence[tuple[str, bool]] = (),
    limit: int | None = None,
    offset: int = 0,
) -> Sequence[Row[Any]]:
    """Rows of ``columns`` (names of ``PERSON_COLUMNS`` / ``RESIDENCE_COLUMNS``) of the persons
    matching ``criteria`` inside its scopes, ordered by ``(column, descending)`` pairs and then
    by id."""
    shape, parameters = _shape_and_parameters(criteria, today)
    statement = _rows_statement(
        _dialect(session), shape, tuple(columns), tuple(order_by), limit is not None
    )
    if limit is not None:
        parameters["limit"] = limit
        parameters["offset"] = offset
    return session.execute(statement, parameters).all()


@lru_cache(maxsize=64)
def _one_person_statement(columns: tuple[str, ...]) -> Select[Any]:
    selected = [
        (PERSON_COLUMNS[name] if name in PERSON_COLUMNS else RESIDENCE_COLUMNS[name]).label(name)
        for name in columns
    ]
    with_residence = any(name in RESIDENCE_COLUMNS for name in columns)
    return (
        select(*selected)
        .select_from(_persons_from(with_residence))
        .where(_PERSONS.c.id == bindparam("person_id"))
    )


def person_columns(
    session: Session, *, person_id: int, columns: Sequence[str], today: date
) -> Row[Any] | None:
    """One person's ``columns`` (names of ``PERSON_COLUMNS`` / ``RESIDENCE_COLUMNS``) by id,
    whatever any scope: for the gateway's notifications, which check the scope on several
    places at once (the person's grid, and the grids a move left and reached)."""
    statement = _one_person_statement(tuple(columns))
    return session.execute(statement, {"person_id": person_id, "today": today}).first()


def unit_grid_code_column(unit_id: ColumnElement[int]) -> ColumnElement[str]:
    """The grid code of the housing unit ``unit_id`` names, as a correlated subquery: for the
    repositories of data about a unit kept elsewhere (a tenancy's place is its unit's grid)."""
    units = HousingUnit.__table__
    return select(units.c.grid_code).where(units.c.id == unit_id).scalar_subquery()


def count_scoped_persons(session: Session, criteria: PersonCriteria, *, today: date) -> int:
    """How many persons match ``criteria`` inside its scopes."""
    shape, parameters = _shape_and_parameters(criteria, today)
    return int(session.execute(_count_statement(_dialect(session), shape), parameters).scalar_one())


def person_key(session: Session, *, ref: str) -> tuple[int, str] | None:
    """``(id, grid_code)`` of the person with this reference, if any, whatever the caller's
    scope: for telling "outside the scope" from "no such person" in denied audit entries, and
    for the consent store's rows (it keeps the id)."""
    statement = select(_PERSONS.c.id, _PERSONS.c.grid_code).where(_PERSONS.c.ref == ref)
    row = session.execute(statement).first()
    return None if row is None else (int(row[0]), str(row[1]))


def person_refs(session: Session, *, person_ids: Sequence[int]) -> dict[int, str]:
    """``{id: ref}`` of the persons with these ids (the consent store lists by ref)."""
    if not person_ids:
        return {}
    statement = select(_PERSONS.c.id, _PERSONS.c.ref).where(_PERSONS.c.id.in_(person_ids))
    return {int(person_id): ref for person_id, ref in session.execute(statement)}


def household_member_refs(session: Session, *, household_id: int) -> list[str]:
    """The refs of a household's members (the subjects of its audit entries)."""
    statement = select(_PERSONS.c.ref).where(_PERSONS.c.household_id == household_id)
    return list(session.execute(statement.order_by(_PERSONS.c.id)).scalars())


def grid_code_of(
    session: Session, model: type[Building | HousingUnit | Household], row_id: int
) -> str | None:
    """The grid code of a building, housing unit or household, if it exists."""
    table = model.__table__
    statement = select(table.c.grid_code).where(table.c.id == row_id)
    return session.execute(statement).scalar_one_or_none()


def buildings_of_grid(
    session: Session, *, grid_code: str, today: date
) -> Sequence[Row[Any, Any, Any, Any, Any, Any]]:
    """``(id, address, name, floors, units, residents)`` of a grid's buildings, by address;
    residents are persons whose current residence is in the building (counts only)."""
    buildings = Building.__table__
    units = HousingUnit.__table__
    residences = Residence.__table__
    unit_counts = (
        select(units.c.building_id, func.count().label("n"))
        .where(units.c.grid_code == grid_code)
        .group_by(units.c.building_id)
        .subquery()
    )
    resident_counts = (
        select(units.c.building_id, func.count(func.distinct(residences.c.person_id)).label("n"))
        .join(units, units.c.id == residences.c.unit_id)
        .where(
            residences.c.grid_code == grid_code,
            or_(residences.c.until.is_(None), residences.c.until >= today),
        )
        .group_by(units.c.building_id)
        .subquery()
    )
    statement = (
        select(
            buildings.c.id,
            buildings.c.address,
            buildings.c.name,
            buildings.c.floors,
            func.coalesce(unit_counts.c.n, 0).label("units"),
            func.coalesce(resident_counts.c.n, 0).label("residents"),
        )
        .outerjoin(unit_counts, unit_counts.c.building_id == buildings.c.id)
        .outerjoin(resident_counts, resident_counts.c.building_id == buildings.c.id)
        .where(buildings.c.grid_code == grid_code)
        .order_by(buildings.c.address, buildings.c.id)
    )
    return session.execute(statement).all()


def units_of_building(session: Session, *, building_id: int) -> Sequence[Row[Any]]:
    """``(id, floor, number, use)`` of a building's housing units, by floor and number."""
    units = HousingUnit.__table__
    statement = (
        select(units.c.id, units.c.floor, units.c.number, type_coerce(units.c.use, String()))
        .where(units.c.building_id == building_id)
        .order_by(units.c.floor, units.c.number, units.c.id)
    )
    return session.execute(statement).all()


# ----------------------------------------------------------------------------- exchange
# Lookups of the data exchange (``citygrid.exchange``): keys of persons named by ID number in
# published events and batches, a person's open residences, and the grids of housing units.

# Rows per IN list: far below every backend's limit on bound parameters.
_IN_CHUNK = 1000
_PERSON_KEYS_SQL = (
    "SELECT id_number, id, ref, grid_code, status, household_id, relation_to_head "
    "FROM persons WHERE id_number"
)


def _sqlite_rows_by_id_numbers(
    session: Session, sql: str, id_numbers: Sequence[str]
) -> list[Sequence[Any]]:
    """The rows of ``sql`` (a SELECT ending in ``WHERE id_number``) for these ID numbers,
    straight from the driver's cursor: the bulk import looks up every row's person, the
    columns need no conversion (a status is its text), and SQLAlchemy's result rows cost as
    much as the query."""
    rows: list[Sequence[Any]] = []
    cursor = session.connection().connection.cursor()
    try:
        for start in range(0, len(id_numbers), _IN_CHUNK):
            numbers = tuple(id_numbers[start : start + _IN_CHUNK])
            marks = ", ".join("?" * len(numbers))
            cursor.execute(f"{sql} IN ({marks})", numbers)
            rows.extend(cursor.fetchall())
    finally:
        cursor.close()
    return rows


def person_keys_by_id_numbers(
    session: Session, *, id_numbers: Sequence[str]
) -> list[Sequence[Any]]:
    """``(id_number, id, ref, grid_code, status, household_id, relation_to_head)`` of the
    persons holding these ID numbers (missing ones are absent)."""
    persons = Person.__table__
    rows: list[Sequence[Any]] = []
    if session.get_bind().dialect.name == "sqlite":
        return _sqlite_rows_by_id_numbers(session, _PERSON_KEYS_SQL, id_numbers)
    for start in range(0, len(id_numbers), _IN_CHUNK):
        chunk = list(id_numbers[start : start + _IN_CHUNK])
        statement = select(
            persons.c.id_number,
            persons.c.id,
            persons.c.ref,
            persons.c.grid_code,
            type_coerce(persons.c.status, String()),
            persons.c.household_id,
            persons.c.relation_to_head,
        ).where(persons.c.id_number.in_(chunk))
        rows.extend(session.execute(statement).all())
    return rows


# INDEXED BY: SQLite's planner prefers the unique ID number index (an equality on a unique
# index), which then reads each person's table row; the covering index answers alone.
_KEY_ROWS_SQL = (
    "SELECT id_number, id, ref, grid_code, status FROM persons "
    "INDEXED BY ix_persons_id_number_keys WHERE id_number"
)


def person_key_rows_by_id_numbers(
    session: Session, *, id_numbers: Sequence[str]
) -> list[Sequence[Any]]:
    """``(id_number, id, ref, grid_code, status)`` of the persons holding these ID numbers
    (missing ones absent), the status as its text, read from the covering index
    ``ix_persons_id_number_keys``: the bulk import's look-up of every row's person."""
    rows: list[Sequence[Any]] = []
    if session.get_bind().dialect.name == "sqlite":
        return _sqlite_rows_by_id_numbers(session, _KEY_ROWS_SQL, id_numbers)
    persons = Person.__table__
    for start in range(0, len(id_numbers), _IN_CHUNK):
        chunk = list(id_numbers[start : start + _IN_CHUNK])
        statement = select(
            persons.c.id_number,
            persons.c.id,
            persons.c.ref,
            persons.c.grid_code,
            type_coerce(persons.c.status, String()),
        ).where(persons.c.id_number.in_(chunk))
        rows.extend(session.execute(statement).all())
    return rows


_PERSON_KEY = select(
    _PERSONS.c.ref,
    _PERSONS.c.grid_code,
    type_coerce(_PERSONS.c.status, String()),
    _PERSONS.c.household_id,
    _PERSONS.c.relation_to_head,
).where(_PERSONS.c.id == bindparam("person_id"))


def person_key_by_id(session: Session, *, person_id: int) -> Row[Any] | None:
    """``(ref, grid_code, status, household_id, relation_to_head)`` of a person, if any."""
    return session.execute(_PERSON_KEY, {"person_id": person_id}).first()


_PERSON_KEYS_BY_ID = select(
    _PERSONS.c.id,
    _PERSONS.c.ref,
    _PERSONS.c.grid_code,
    type_coerce(_PERSONS.c.status, String()),
    _PERSONS.c.household_id,
    _PERSONS.c.relation_to_head,
).where(_PERSONS.c.id.in_(bindparam("person_ids", expanding=True)))


def person_keys_by_ids(session: Session, *, person_ids: Sequence[int]) -> list[Row[Any]]:
    """``(id, ref, grid_code, status, household_id, relation_to_head)`` of the persons with
    these ids (missing ones are absent)."""
    rows: list[Row[Any]] = []
    for start in range(0, len(person_ids), _IN_CHUNK):
        chunk = list(person_ids[start : start + _IN_CHUNK])
        rows.extend(session.execute(_PERSON_KEYS_BY_ID, {"person_ids": chunk}).all())
    return rows


_HOUSEHOLD_GRIDS = select(Household.id, Household.grid_code).where(
    Household.id.in_(bindparam("household_ids", expanding=True))
)


def household_grid_codes(session: Session, *, household_ids: Sequence[int]) -> dict[int, str]:
    """``{id: grid code}`` of the households with these ids (missing ones are absent)."""
    found: dict[int, str] = {}
    for start in range(0, len(household_ids), _IN_CHUNK):
        chunk = list(household_ids[start : start + _IN_CHUNK])
        for household_id, grid_code in session.execute(_HOUSEHOLD_GRIDS, {"household_ids": chunk}):
            found[int(household_id)] = str(grid_code)
    return found


def person_by_id_number(session: Session, *, id_number: str) -> Person | None:
    """The person holding this ID number, if any."""
    return session.scalars(select(Person).where(Person.id_number == id_number)).first()


def persons_by_id_numbers(
    session: Session, *, id_numbers: Sequence[str], refresh: bool = False
) -> list[Person]:
    """The persons holding these ID numbers (missing ones are absent)."""
    found: list[Person] = []
    for start in range(0, len(id_numbers), _IN_CHUNK):
        chunk = list(id_numbers[start : start + _IN_CHUNK])
        statement = select(Person).where(Person.id_number.in_(chunk))
        if refresh:
            statement = statement.execution_options(populate_existing=True)
        found.extend(session.scalars(statement))
    return found


def persons_by_ids(session: Session, *, person_ids: Sequence[int]) -> list[Person]:
    """The persons with these ids (missing ones are absent)."""
    found: list[Person] = []
    for start in range(0, len(person_ids), _IN_CHUNK):
        chunk = list(person_ids[start : start + _IN_CHUNK])
        found.extend(session.scalars(select(Person).where(Person.id.in_(chunk))))
    return found


def open_residences(session: Session, *, person_id: int) -> list[Residence]:
    """The person's residences without an end, oldest first."""
    statement = (
        select(Residence)
        .where(Residence.person_id == person_id, Residence.until.is_(None))
        .order_by(Residence.since, Residence.id)
    )
    return list(session.scalars(statement))


class ResidenceRow(NamedTuple):
    """A residence as a plain row (the exchange's moves write residences with Core)."""

    id: int
    person_id: int
    unit_id: int
    grid_code: str
    kind: ResidenceKind
    since: date
    until: date | None


_RESIDENCES = typing_cast(Table, Residence.__table__)
_RESIDENCE_ROW = select(
    _RESIDENCES.c.id,
    _RESIDENCES.c.person_id,
    _RESIDENCES.c.unit_id,
    _RESIDENCES.c.grid_code,
    _RESIDENCES.c.kind,
    _RESIDENCES.c.since,
    _RESIDENCES.c.until,
).order_by(_RESIDENCES.c.since, _RESIDENCES.c.id)


def open_residence_rows(
    session: Session, *, person_ids: Sequence[int]
) -> dict[int, list[ResidenceRow]]:
    """``{person id: residences without an end, oldest first}`` of these persons (each of
    them a key; an empty list for none)."""
    found: dict[int, list[ResidenceRow]] = {person_id: [] for person_id in person_ids}
    for start in range(0, len(person_ids), _IN_CHUNK):
        chunk = list(person_ids[start : start + _IN_CHUNK])
        statement = _RESIDENCE_ROW.where(
            _RESIDENCES.c.person_id.in_(chunk), _RESIDENCES.c.until.is_(None)
        )
        for row in session.execute(statement):
            found[row.person_id].append(ResidenceRow(*row))
    return found


_INSERT_RESIDENCE = insert(_RESIDENCES).returning(_RESIDENCES.c.id)
_END_RESIDENCE = (
    update(_RESIDENCES)
    .where(_RESIDENCES.c.id == bindparam("residence_id"))
    .values(until=bindparam("new_until"), updated_at=bindparam("moment"))
)


def insert_residence(session: Session, values: dict[str, Any]) -> int:
    """Insert a residence (Core); its id."""
    residence_id: int = session.execute(_INSERT_RESIDENCE, values).scalar_one()
    return residence_id


def end_residence_rows(session: Session, ends: Sequence[dict[str, Any]]) -> None:
    """Set ``until`` of residences: ``{"residence_id", "new_until", "moment"}`` each (one
    executemany)."""
    if ends:
        session.execute(_END_RESIDENCE, list(ends))


def unit_grid_codes(session: Session, *, unit_ids: Sequence[int]) -> dict[int, str]:
    """``{unit id: grid code}`` of the housing units that exist among ``unit_ids``."""
    units = HousingUnit.__table__
    found: dict[int, str] = {}
    for start in range(0, len(unit_ids), _IN_CHUNK):
        chunk = list(unit_ids[start : start + _IN_CHUNK])
        statement = select(units.c.id, units.c.grid_code).where(units.c.id.in_(chunk))
        found.update({unit_id: grid_code for unit_id, grid_code in session.execute(statement)})
    return found


# ----------------------------------------------------------------------------- geocoding


def buildings_at_address(
    session: Session, *, spellings: Sequence[str], compact: str, limit: int
) -> list[tuple[str, float, float]]:
    """``(address, lon, lat)`` of buildings whose address is one of ``spellings`` (an index
    lookup); failing that, whose address without spaces is ``compact`` (a scan)."""
    columns = (
        select(Building.address, Building.lon, Building.lat).order_by(Building.id).limit(limit)
    )
    rows = session.execute(columns.where(Building.address.in_(set(spellings)))).all()
    if not rows:
        rows = session.execute(
            columns.where(func.replace(Building.address, " ", "") == compact)
        ).all()
    return [(row[0], row[1], row[2]) for row in rows]


_CHANGES = typing_cast(Table, RegistryChange.__table__)


def insert_changes(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert history rows (one executemany)."""
    if rows:
        session.execute(insert(_CHANGES), list(rows))
