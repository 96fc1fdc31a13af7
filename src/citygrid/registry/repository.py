"""Every query of the registry. Nothing else in the registry builds a SELECT."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    FromClause,
    Integer,
    Select,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal_column,
    null,
    select,
    union_all,
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
