"""Urban components of catalogue classes, and the organisations of a grid."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, ValidationFailed
from citygrid.registry import service
from tests.registry.factories import (
    GRID,
    OTHER_GRID,
    UNKNOWN_GRID,
    building_data,
    person_data,
    row_counts,
    uscc,
)

MANHOLE_COVER = "0101"
TREE = "0401"


def _component(**overrides: object) -> dict[str, object]:
    return {"class_code": MANHOLE_COVER, "grid_code": GRID, "lon": 113.27, "lat": 23.13} | overrides


def test_a_component_gets_an_identifier_and_its_class_s_department(
    city: Session, clerk: Actor
) -> None:
    first = service.create_component(city, clerk, data=_component())
    second = service.create_component(city, clerk, data=_component())
    tree = service.create_component(city, clerk, data=_component(class_code=TREE))

    assert first.identifier == f"{GRID}{MANHOLE_COVER}000001"
    assert second.identifier == f"{GRID}{MANHOLE_COVER}000002"
    assert first.owner_department == "water-affairs"
    assert tree.owner_department == "landscaping"
    assert first.condition == "good"
    [change] = service.history(city, entity="component", entity_id=first.id)
    assert change.after is not None and change.after["identifier"] == first.identifier


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"class_code": "0999"}, "class_code"),
        ({"class_code": "manhole"}, "class_code"),
        ({"grid_code": UNKNOWN_GRID}, "grid_code"),
        ({"condition": "sparkling"}, "condition"),
        ({"owner_department": "ministry-of-fun"}, "owner_department"),
    ],
)
def test_a_bad_component_is_refused(
    city: Session, clerk: Actor, overrides: dict, field: str
) -> None:
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as caught:
        service.create_component(city, clerk, data=_component(**overrides))

    assert [detail["field"] for detail in caught.value.details] == [field]
    assert row_counts(city) == before


def test_a_broken_manhole_cover_is_recorded(city: Session, clerk: Actor) -> None:
    component = service.create_component(city, clerk, data=_component())

    service.update_component(city, clerk, component_id=component.id, data={"condition": "damaged"})

    last = service.history(city, entity="component", entity_id=component.id)[-1]
    assert (last.before, last.after) == ({"condition": "good"}, {"condition": "damaged"})


def test_an_identifier_is_used_once(city: Session, clerk: Actor) -> None:
    service.create_component(city, clerk, data=_component(identifier="A-1"))

    with pytest.raises(Conflict):
        service.create_component(city, clerk, data=_component(identifier="A-1"))


def test_an_organisation_with_a_valid_uscc_is_registered(city: Session, clerk: Actor) -> None:
    code = uscc()

    organisation = service.create_organisation(
        city,
        clerk,
        data={"grid_code": GRID, "name": "越秀区某某餐厅", "kind": "shop", "uscc": code.lower()},
    )

    assert organisation.uscc == code
    [change] = service.history(city, entity="organisation", entity_id=organisation.id)
    assert change.after is not None and change.after["kind"] == "shop"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"uscc": "91440104MA0000001X"}, "uscc"),
        ({"uscc": "91440104"}, "uscc"),
        ({"grid_code": UNKNOWN_GRID}, "grid_code"),
        ({"kind": "cartel"}, "kind"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_organisation_is_refused(
    city: Session, clerk: Actor, overrides: dict, field: str
) -> None:
    data = {"grid_code": GRID, "name": "某某公司", "kind": "employer"} | overrides
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as caught:
        service.create_organisation(city, clerk, data=data)

    assert [detail["field"] for detail in caught.value.details] == [field]
    assert row_counts(city) == before


def test_an_organisation_s_unit_is_in_its_grid_and_its_uscc_unique(
    city: Session, clerk: Actor
) -> None:
    building = service.create_building(city, clerk, data=building_data(OTHER_GRID))
    shopfront = service.create_housing_unit(
        city,
        clerk,
        data={"building_id": building.id, "floor": 1, "number": "101", "use": "commercial"},
    )
    code = uscc()
    service.create_organisation(
        city, clerk, data={"grid_code": OTHER_GRID, "name": "甲", "kind": "shop", "uscc": code}
    )

    with pytest.raises(ValidationFailed) as elsewhere:
        service.create_organisation(
            city,
            clerk,
            data={"grid_code": GRID, "name": "乙", "kind": "shop", "unit_id": shopfront.id},
        )
    with pytest.raises(Conflict):
        service.create_organisation(
            city, clerk, data={"grid_code": GRID, "name": "丙", "kind": "shop", "uscc": code}
        )

    assert elsewhere.value.details[0]["field"] == "unit_id"


def test_an_employer_of_residents_is_not_deleted(city: Session, clerk: Actor) -> None:
    employer = service.create_organisation(
        city, clerk, data={"grid_code": GRID, "name": "某某工厂", "kind": "employer"}
    )
    service.create_person(city, clerk, data=person_data(employer_id=employer.id))

    with pytest.raises(Conflict):
        service.delete_organisation(city, clerk, organisation_id=employer.id)
