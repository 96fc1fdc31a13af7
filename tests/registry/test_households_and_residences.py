"""Households live in one grid under one head; residences tie people to flats over time."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, ValidationFailed
from citygrid.registry import service
from citygrid.registry.models import Building, HousingUnit
from tests.registry.factories import (
    GRID,
    OTHER_GRID,
    UNKNOWN_GRID,
    building_data,
    person_data,
    row_counts,
)


def _flat(session: Session, actor: Actor, grid_code: str = GRID) -> HousingUnit:
    building: Building = service.create_building(session, actor, data=building_data(grid_code))
    return service.create_housing_unit(
        session,
        actor,
        data={"building_id": building.id, "floor": 3, "number": "302", "use": "rental"},
    )


def test_a_household_in_a_flat_takes_the_flat_s_grid(city: Session, clerk: Actor) -> None:
    flat = _flat(city, clerk)

    household = service.create_household(
        city, clerk, data={"unit_id": flat.id, "registration_type": "family"}
    )

    assert household.grid_code == GRID
    [change] = service.history(city, entity="household", entity_id=household.id)
    assert change.action == "create"
    assert change.after == {
        "id": household.id,
        "grid_code": GRID,
        "unit_id": flat.id,
        "registration_type": "family",
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"registration_type": "family"}, "grid_code"),
        ({"grid_code": UNKNOWN_GRID, "registration_type": "family"}, "grid_code"),
        ({"grid_code": GRID, "registration_type": "commune"}, "registration_type"),
        ({"grid_code": GRID, "unit_id": 999_999_999, "registration_type": "family"}, "unit_id"),
    ],
)
def test_a_household_needs_a_real_place(
    city: Session, clerk: Actor, data: dict, field: str
) -> None:
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as caught:
        service.create_household(city, clerk, data=data)

    assert field in {detail["field"] for detail in caught.value.details}
    assert row_counts(city) == before


def test_a_household_cannot_claim_another_grid_than_its_flat(city: Session, clerk: Actor) -> None:
    flat = _flat(city, clerk)
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as caught:
        service.create_household(
            city,
            clerk,
            data={"grid_code": OTHER_GRID, "unit_id": flat.id, "registration_type": "family"},
        )

    assert caught.value.details[0]["field"] == "grid_code"
    assert row_counts(city) == before


def test_a_person_joins_a_household_of_the_same_grid_only(city: Session, clerk: Actor) -> None:
    household = service.create_household(
        city, clerk, data={"grid_code": GRID, "registration_type": "family"}
    )
    head = service.create_person(
        city, clerk, data=person_data(household_id=household.id, relation_to_head="head")
    )
    assert head.household_id == household.id
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as caught:
        service.create_person(
            city,
            clerk,
            data=person_data(OTHER_GRID, household_id=household.id, relation_to_head="child"),
        )

    assert caught.value.details == [
        {"field": "household_id", "reason": "the household is in another grid"}
    ]
    assert row_counts(city) == before


def test_a_household_has_one_head(city: Session, clerk: Actor) -> None:
    household = service.create_household(
        city, clerk, data={"grid_code": GRID, "registration_type": "family"}
    )
    service.create_person(
        city, clerk, data=person_data(household_id=household.id, relation_to_head="head")
    )
    spouse = service.create_person(
        city,
        clerk,
        data=person_data(male=False, household_id=household.id, relation_to_head="spouse"),
    )
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as on_create:
        service.create_person(
            city, clerk, data=person_data(household_id=household.id, relation_to_head="head")
        )
    with pytest.raises(ValidationFailed) as on_update:
        service.update_person(city, clerk, person_id=spouse.id, data={"relation_to_head": "head"})

    assert on_create.value.details[0]["field"] == "relation_to_head"
    assert on_update.value.details[0]["field"] == "relation_to_head"
    assert row_counts(city) == before


def test_a_household_with_members_keeps_its_grid_and_is_not_deleted(
    city: Session, clerk: Actor
) -> None:
    household = service.create_household(
        city, clerk, data={"grid_code": GRID, "registration_type": "family"}
    )
    service.create_person(city, clerk, data=person_data(household_id=household.id))

    with pytest.raises(Conflict):
        service.update_household(
            city, clerk, household_id=household.id, data={"grid_code": OTHER_GRID}
        )
    with pytest.raises(Conflict):
        service.delete_household(city, clerk, household_id=household.id)


def test_an_empty_household_moves_and_is_deleted_with_history(city: Session, clerk: Actor) -> None:
    household = service.create_household(
        city, clerk, data={"grid_code": GRID, "registration_type": "family"}
    )
    household_id = household.id

    service.update_household(
        city,
        clerk,
        household_id=household_id,
        data={"grid_code": OTHER_GRID, "registration_type": "collective"},
    )
    service.delete_household(city, clerk, household_id=household_id)

    changes = service.history(city, entity="household", entity_id=household_id)
    assert [change.action for change in changes] == ["create", "update", "delete"]
    assert changes[1].before == {"grid_code": GRID, "registration_type": "family"}
    assert changes[1].after == {"grid_code": OTHER_GRID, "registration_type": "collective"}


def test_a_residence_takes_the_flat_s_grid_and_is_ended_on_moving_out(
    city: Session, clerk: Actor
) -> None:
    flat = _flat(city, clerk)
    person = service.create_person(city, clerk, data=person_data(OTHER_GRID))

    residence = service.create_residence(
        city,
        clerk,
        data={
            "person_id": person.id,
            "unit_id": flat.id,
            "kind": "tenant",
            "since": date(2023, 9, 1),
        },
    )
    assert residence.grid_code == GRID

    service.end_residence(city, clerk, residence_id=residence.id, until=date(2024, 8, 31))
    service.end_residence(city, clerk, residence_id=residence.id, until=date(2024, 8, 31))

    changes = service.history(city, entity="residence", entity_id=residence.id)
    assert [change.action for change in changes] == ["create", "update"]
    assert changes[1].before == {"until": None}
    assert changes[1].after == {"until": "2024-08-31"}


def test_a_residence_cannot_end_before_it_began(city: Session, clerk: Actor) -> None:
    flat = _flat(city, clerk)
    person = service.create_person(city, clerk, data=person_data())
    data = {"person_id": person.id, "unit_id": flat.id, "kind": "tenant", "since": "2023-09-01"}
    residence = service.create_residence(city, clerk, data=data)
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as on_create:
        service.create_residence(city, clerk, data={**data, "until": "2023-08-31"})
    with pytest.raises(ValidationFailed) as on_end:
        service.end_residence(city, clerk, residence_id=residence.id, until=date(2020, 1, 1))
    with pytest.raises(ValidationFailed) as on_missing:
        service.create_residence(city, clerk, data={**data, "unit_id": 999_999_999})

    assert on_create.value.details[0]["field"] == "until"
    assert on_end.value.details[0]["field"] == "until"
    assert on_missing.value.details[0]["field"] == "unit_id"
    assert row_counts(city) == before


def test_a_person_with_residences_is_not_deleted(city: Session, clerk: Actor) -> None:
    flat = _flat(city, clerk)
    person = service.create_person(city, clerk, data=person_data())
    residence = service.create_residence(
        city,
        clerk,
        data={"person_id": person.id, "unit_id": flat.id, "kind": "tenant", "since": "2023-09-01"},
    )

    with pytest.raises(Conflict):
        service.delete_person(city, clerk, person_id=person.id)

    service.delete_residence(city, clerk, residence_id=residence.id)
    service.delete_person(city, clerk, person_id=person.id)
    actions = [c.action for c in service.history(city, entity="residence", entity_id=residence.id)]
    assert actions == ["create", "delete"]
