"""Writes of personal data in the registry are in the access log too: who changed which field
classes of whom, in the same transaction as the write."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.audit.models import AuditEntry
from citygrid.kit.actor import Actor
from citygrid.kit.errors import ValidationFailed
from citygrid.registry import service as registry
from citygrid.registry.catalogue import sync_component_classes
from tests.registry.factories import GRID, UNKNOWN_GRID, building_data, person_data

CLERK = Actor(
    name="worker-0042",
    role="grid_worker",
    scopes=(GRID,),
    kind="account",
    request_id="req-registry",
    client_address="10.1.2.3",
)


def log(session: Session) -> list[tuple[str, list[str], list[str]]]:
    """(action, subjects, field classes) of every entry, oldest first."""
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
    return [(e.action, e.subjects, e.fields) for e in entries]


@pytest.fixture
def unit_id(city: Session) -> int:
    sync_component_classes(city)
    building = registry.create_building(city, CLERK, data=building_data())
    unit = registry.create_housing_unit(
        city, CLERK, data={"building_id": building.id, "floor": 2, "number": "201", "use": "rental"}
    )
    return unit.id


def test_a_residents_life_in_the_registry_is_in_the_log(city: Session, unit_id: int) -> None:
    household = registry.create_household(
        city, CLERK, data={"unit_id": unit_id, "registration_type": "family"}
    )
    person = registry.create_person(
        city, CLERK, data=person_data(household_id=household.id, relation_to_head="head")
    )
    residence = registry.create_residence(
        city,
        CLERK,
        data={
            "person_id": person.id,
            "unit_id": unit_id,
            "kind": "tenant",
            "since": date(2024, 1, 1),
        },
    )
    registry.update_person(city, CLERK, person_id=person.id, data={"mobile": "13900139000"})
    registry.update_person(city, CLERK, person_id=person.id, data={"mobile": "13900139000"})
    registry.update_household(
        city, CLERK, household_id=household.id, data={"registration_type": "collective"}
    )
    registry.delete_residence(city, CLERK, residence_id=residence.id)

    ref = person.ref
    assert log(city) == [
        ("household_created", [], ["household_registration"]),
        ("person_created", [ref], ["contact", "household_registration", "identity"]),
        ("residence_created", [ref], ["contact", "tenancy"]),
        ("person_updated", [ref], ["contact"]),  # the second update changed nothing
        ("household_updated", [ref], ["household_registration"]),
        ("residence_deleted", [ref], ["contact", "tenancy"]),
    ]
    entry = city.scalars(select(AuditEntry).where(AuditEntry.action == "person_updated")).one()
    assert (entry.actor, entry.role, entry.outcome) == ("worker-0042", "grid_worker", "allowed")
    assert (entry.request_id, entry.client_address) == ("req-registry", "10.1.2.3")
    assert entry.detail == {"entity": "person", "id": person.id, "columns": ["mobile"]}


def test_a_death_and_a_deletion_are_logged_with_their_fields(city: Session) -> None:
    person = registry.create_person(city, CLERK, data=person_data())
    registry.mark_deceased(city, CLERK, person_id=person.id, died_on=date(2025, 6, 1))
    registry.delete_person(city, CLERK, person_id=person.id)

    actions = log(city)
    assert actions[1] == ("person_updated", [person.ref], ["identity"])
    assert actions[2][0:2] == ("person_deleted", [person.ref])
    assert {"identity", "contact"} <= set(actions[2][2])


def test_a_refused_write_leaves_no_entry(city: Session) -> None:
    with pytest.raises(ValidationFailed):
        registry.create_person(city, CLERK, data=person_data(grid_code=UNKNOWN_GRID))

    assert log(city) == []


def test_places_and_things_are_not_personal_data(city: Session, unit_id: int) -> None:
    assert log(city) == []  # the building and unit of the fixture
