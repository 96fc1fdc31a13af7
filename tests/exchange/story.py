"""The people and department systems of the exchange stories, and builders of events.

    from tests.exchange.story import PUBLIC_SECURITY, family, event

Residents live in GRID (440104001001002) unless said otherwise; their names and ID numbers
are synthetic.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.audit.models import AuditEntry
from citygrid.exchange import service
from citygrid.exchange.models import (
    AllowanceRecord,
    LifeEventRecord,
    OutboxEntry,
    PensionRecord,
    Task,
    TenancyRecord,
)
from citygrid.kit.actor import Actor
from citygrid.registry import service as registry
from citygrid.registry.models import Household, HousingUnit, Person, RegistryChange, Residence
from tests.registry.factories import GRID, OTHER_GRID, building_data, person_data

__all__ = ["GRID", "OTHER_GRID"]


def _department(name: str, department: str) -> Actor:
    return Actor(name=name, role="department_officer", department=department, kind="client")


PUBLIC_SECURITY = _department("ps-hukou-system", "public-security")
FAMILY_PLANNING = _department("fp-marriage-system", "family-planning")
RENTAL_HOUSING = _department("rental-registry", "rental-housing")
CIVIL_AFFAIRS = _department("ca-dibao-system", "civil-affairs")
SOCIAL_SECURITY = _department("hrss-pension-system", "social-security")
WATER = _department("water-billing", "water-affairs")
CLERK = Actor(name="worker-0042", role="grid_worker", scopes=(GRID,))

#: When the death of the story happened (China Standard Time), and the day it gives.
DIED_AT = "2026-03-14T09:30:00+08:00"
DIED_ON = date(2026, 3, 14)

_sources = itertools.count(1)


def source_id(prefix: str = "EV") -> str:
    """A fresh source_event_id."""
    return f"{prefix}-{next(_sources):06d}"


def flat(session: Session, grid_code: str = GRID, number: str = "302") -> HousingUnit:
    """A rental flat in a new building of the grid."""
    building = registry.create_building(session, CLERK, data=building_data(grid_code))
    return registry.create_housing_unit(
        session,
        CLERK,
        data={"building_id": building.id, "floor": 3, "number": number, "use": "rental"},
    )


def resident(
    session: Session,
    *,
    grid_code: str = GRID,
    home: HousingUnit | None = None,
    household: Household | None = None,
    relation: str | None = None,
    **overrides: Any,
) -> Person:
    """A resident of the grid, living in ``home`` since 2010 when given."""
    data = person_data(grid_code, **overrides)
    if household is not None:
        data |= {"household_id": household.id, "relation_to_head": relation}
    person = registry.create_person(session, CLERK, data=data)
    if home is not None:
        registry.create_residence(
            session,
            CLERK,
            data={
                "person_id": person.id,
                "unit_id": home.id,
                "kind": "actual_residence",
                "since": date(2010, 5, 1),
            },
        )
    return person


@dataclass
class Family:
    """A household of two in a flat: the head and the spouse."""

    home: HousingUnit
    household: Household
    head: Person
    spouse: Person


def family(session: Session, grid_code: str = GRID) -> Family:
    """A household of two in a new flat of the grid."""
    home = flat(session, grid_code)
    household = registry.create_household(
        session, CLERK, data={"unit_id": home.id, "registration_type": "family"}
    )
    head = resident(session, grid_code=grid_code, home=home, household=household, relation="head")
    spouse = resident(
        session,
        grid_code=grid_code,
        home=home,
        household=household,
        relation="spouse",
        male=False,
        name="李秀英",
    )
    return Family(home, household, head, spouse)


def event(
    type_: str, subject: Person | str, *, occurred_at: str = DIED_AT, **fields: Any
) -> dict[str, Any]:
    """A life event about a person (or an ID number), with a fresh source_event_id."""
    id_number = subject if isinstance(subject, str) else subject.id_number
    return {
        "type": type_,
        "source_event_id": fields.pop("source_event_id", None) or source_id(),
        "occurred_at": occurred_at,
        "id_number": id_number,
        **fields,
    }


def give_allowance(session: Session, person: Person, amount: str = "1080.00") -> None:
    """Civil affairs publishes an active subsistence allowance for the person."""
    service.publish_records(
        session,
        CIVIL_AFFAIRS,
        dataset="subsistence_allowances",
        data={
            "records": [
                {
                    "id_number": person.id_number,
                    "amount": amount,
                    "status": "active",
                    "since": "2019-07-01",
                }
            ]
        },
    )


def give_pension(session: Session, person: Person, amount: str = "3250.50") -> None:
    """Social security publishes an active pension for the person."""
    service.publish_records(
        session,
        SOCIAL_SECURITY,
        dataset="pensions",
        data={
            "records": [
                {
                    "id_number": person.id_number,
                    "amount": amount,
                    "status": "active",
                    "since": "2015-01-01",
                }
            ]
        },
    )


def give_tenancy(session: Session, person: Person, unit: HousingUnit) -> None:
    """The rental housing office registers the person's tenancy of the unit."""
    service.publish_records(
        session,
        RENTAL_HOUSING,
        dataset="tenancies",
        data={
            "records": [{"id_number": person.id_number, "unit_id": unit.id, "since": "2021-09-01"}]
        },
    )


def allowance(session: Session, person: Person) -> AllowanceRecord | None:
    """The person's allowance as held now."""
    return session.scalars(
        select(AllowanceRecord).where(AllowanceRecord.person_id == person.id)
    ).first()


def pension(session: Session, person: Person) -> PensionRecord | None:
    """The person's pension as held now."""
    return session.scalars(
        select(PensionRecord).where(PensionRecord.person_id == person.id)
    ).first()


def tenancies(session: Session, person: Person) -> list[TenancyRecord]:
    """The person's tenancies as held now."""
    return list(session.scalars(select(TenancyRecord).where(TenancyRecord.person_id == person.id)))


def residences(session: Session, person: Person) -> list[Residence]:
    """The person's residences, oldest first."""
    statement = select(Residence).where(Residence.person_id == person.id).order_by(Residence.since)
    return list(session.scalars(statement))


def tasks(session: Session, person: Person) -> list[Task]:
    """The tasks about the person."""
    statement = select(Task).where(Task.subject_person_id == person.id).order_by(Task.id)
    return list(session.scalars(statement))


def told(session: Session, person: Person) -> list[AuditEntry]:
    """The "told" entries of the access log about the person."""
    statement = select(AuditEntry).where(AuditEntry.action == "told").order_by(AuditEntry.id)
    return [entry for entry in session.scalars(statement) if person.ref in entry.subjects]


def snapshot(session: Session) -> dict[str, int]:
    """Row counts of everything a publish may change."""
    session.flush()
    models = (
        Person,
        Residence,
        RegistryChange,
        LifeEventRecord,
        OutboxEntry,
        AllowanceRecord,
        PensionRecord,
        TenancyRecord,
        Task,
    )
    return {
        model.__tablename__: session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in models
    }


def money(value: str) -> Decimal:
    """A Decimal amount, for comparisons."""
    return Decimal(value)
