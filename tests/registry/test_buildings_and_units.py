"""Buildings carry a QR plate; their flats live in their grid."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, NotFound, ValidationFailed
from citygrid.registry import service
from tests.registry.factories import GRID, OTHER_GRID, UNKNOWN_GRID, building_data, row_counts


def test_a_new_building_gets_a_qr_token_and_a_history_row(city: Session, clerk: Actor) -> None:
    building = service.create_building(city, clerk, data=building_data())

    assert len(building.qr_token) == 32
    assert service.building_by_qr_token(city, qr_token=building.qr_token) is building
    [change] = service.history(city, entity="building", entity_id=building.id)
    assert change.action == "create"
    assert change.grid_code == GRID
    assert change.after is not None
    assert change.after["floors"] == 7
    assert change.after["qr_token"] == building.qr_token
    assert "created_at" not in change.after


def test_an_unknown_qr_token_finds_nothing(city: Session) -> None:
    with pytest.raises(NotFound):
        service.building_by_qr_token(city, qr_token="no-such-token")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"grid_code": UNKNOWN_GRID}, "grid_code"),
        ({"grid_code": "440104"}, "grid_code"),
        ({"floors": 0}, "floors"),
        ({"floors": 201}, "floors"),
        ({"lon": 181.0}, "lon"),
        ({"lat": -91.0}, "lat"),
        ({"address": ""}, "address"),
        ({"qr_token": "chosen-by-me"}, "qr_token"),
    ],
)
def test_a_bad_building_is_refused(
    city: Session, clerk: Actor, overrides: dict, field: str
) -> None:
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as caught:
        service.create_building(city, clerk, data=building_data(**overrides))

    assert [detail["field"] for detail in caught.value.details] == [field]
    assert row_counts(city) == before


def test_a_flat_lives_in_its_building_s_grid(city: Session, clerk: Actor) -> None:
    building = service.create_building(city, clerk, data=building_data(OTHER_GRID))

    unit = service.create_housing_unit(
        city,
        clerk,
        data={"building_id": building.id, "floor": 2, "number": "201", "use": "owner_occupied"},
    )

    assert unit.grid_code == OTHER_GRID
    [change] = service.history(city, entity="housing_unit", entity_id=unit.id)
    assert change.after is not None and change.after["use"] == "owner_occupied"


def test_a_flat_must_be_in_a_real_building_below_its_roof(city: Session, clerk: Actor) -> None:
    building = service.create_building(city, clerk, data=building_data(floors=3))
    before = row_counts(city)

    with pytest.raises(ValidationFailed) as above:
        service.create_housing_unit(
            city,
            clerk,
            data={"building_id": building.id, "floor": 4, "number": "401", "use": "rental"},
        )
    with pytest.raises(ValidationFailed) as nowhere:
        service.create_housing_unit(
            city,
            clerk,
            data={"building_id": 999_999_999, "floor": 1, "number": "101", "use": "rental"},
        )
    with pytest.raises(ValidationFailed) as bad_use:
        service.create_housing_unit(
            city,
            clerk,
            data={"building_id": building.id, "floor": 1, "number": "101", "use": "castle"},
        )

    assert above.value.details[0]["field"] == "floor"
    assert nowhere.value.details[0]["field"] == "building_id"
    assert bad_use.value.details[0]["field"] == "use"
    assert row_counts(city) == before


def test_a_building_update_records_before_and_after(city: Session, clerk: Actor) -> None:
    building = service.create_building(city, clerk, data=building_data())

    service.update_building(
        city, clerk, building_id=building.id, data={"floors": 9, "address": building.address}
    )
    service.update_building(city, clerk, building_id=building.id, data={"floors": 9})

    changes = service.history(city, entity="building", entity_id=building.id)
    assert [change.action for change in changes] == ["create", "update"]
    assert changes[1].before == {"floors": 7}
    assert changes[1].after == {"floors": 9}


def test_a_building_with_flats_keeps_its_grid_and_stays(city: Session, clerk: Actor) -> None:
    building = service.create_building(city, clerk, data=building_data(floors=5))
    unit = service.create_housing_unit(
        city, clerk, data={"building_id": building.id, "floor": 5, "number": "501", "use": "vacant"}
    )
    before = row_counts(city)

    with pytest.raises(Conflict):
        service.update_building(
            city, clerk, building_id=building.id, data={"grid_code": OTHER_GRID}
        )
    with pytest.raises(ValidationFailed) as lower:
        service.update_building(city, clerk, building_id=building.id, data={"floors": 4})
    with pytest.raises(Conflict):
        service.delete_building(city, clerk, building_id=building.id)

    assert lower.value.details[0]["field"] == "floors"
    assert row_counts(city) == before

    service.delete_housing_unit(city, clerk, unit_id=unit.id)
    service.delete_building(city, clerk, building_id=building.id)
    actions = [c.action for c in service.history(city, entity="building", entity_id=building.id)]
    assert actions == ["create", "delete"]


def test_an_unknown_building_is_not_found(city: Session, clerk: Actor) -> None:
    with pytest.raises(NotFound):
        service.update_building(city, clerk, building_id=999_999_999, data={"floors": 2})
