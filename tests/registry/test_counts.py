"""Counts per grid: what a street official sees on the dashboard, with no personal data."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.kit.errors import NotFound, ValidationFailed
from citygrid.registry import service
from citygrid.registry.catalogue import component_slugs
from citygrid.registry.service import GridCounts
from tests.fixtures_territory import MINI_GRID_CODES, STREET_CODES
from tests.registry.factories import GRID, OTHER_GRID, building_data, person_data


def fill_two_grids(session: Session, actor: Actor) -> None:
    """GRID: 2 buildings, 3 flats, 2 households, 3 residents (and one deceased), 2 manhole
    covers and a tree. OTHER_GRID: 1 building, 1 resident, 1 street lamp."""
    first = service.create_building(session, actor, data=building_data(GRID))
    service.create_building(session, actor, data=building_data(GRID))
    for number in ("101", "102", "201"):
        service.create_housing_unit(
            session,
            actor,
            data={
                "building_id": first.id,
                "floor": int(number[0]),
                "number": number,
                "use": "rental",
            },
        )
    households = [
        service.create_household(
            session, actor, data={"grid_code": GRID, "registration_type": "family"}
        )
        for _ in range(2)
    ]
    for index in range(3):
        service.create_person(
            session, actor, data=person_data(GRID, household_id=households[index % 2].id)
        )
    service.create_person(
        session, actor, data=person_data(GRID, status="deceased", died_on="2022-02-02")
    )
    for class_code in ("0101", "0101", "0401"):
        service.create_component(
            session,
            actor,
            data={"class_code": class_code, "grid_code": GRID, "lon": 113.27, "lat": 23.13},
        )
    service.create_building(session, actor, data=building_data(OTHER_GRID))
    service.create_person(session, actor, data=person_data(OTHER_GRID))
    service.create_component(
        session,
        actor,
        data={"class_code": "0105", "grid_code": OTHER_GRID, "lon": 113.27, "lat": 23.13},
    )


def test_counts_cover_every_grid_under_the_prefix_with_zeros_for_empty_ones(
    city: Session, clerk: Actor
) -> None:
    fill_two_grids(city, clerk)

    counts = service.counts_by_grid(city, code_prefix=STREET_CODES[0])

    assert sorted(counts) == [code for code in MINI_GRID_CODES if code.startswith(STREET_CODES[0])]
    mine = counts[GRID]
    assert isinstance(mine, GridCounts)
    assert (mine.buildings, mine.housing_units, mine.households, mine.residents) == (2, 3, 2, 3)
    assert set(mine.components) == set(component_slugs())
    assert mine.components["manhole_cover"] == 2
    assert mine.components["tree"] == 1
    assert mine.components["street_lamp"] == 0
    empty = counts[MINI_GRID_CODES[0]]
    assert (empty.buildings, empty.housing_units, empty.households, empty.residents) == (0, 0, 0, 0)
    assert set(empty.components.values()) == {0}
    assert OTHER_GRID not in counts


def test_the_district_prefix_sees_both_streets(city: Session, clerk: Actor) -> None:
    fill_two_grids(city, clerk)

    counts = service.counts_by_grid(city, code_prefix="440104")

    assert sorted(counts) == sorted(MINI_GRID_CODES)
    assert counts[OTHER_GRID].residents == 1
    assert counts[OTHER_GRID].components["street_lamp"] == 1
    assert sum(grid.residents for grid in counts.values()) == 4


def test_a_code_no_unit_has_counts_no_grids(city: Session, clerk: Actor) -> None:
    fill_two_grids(city, clerk)

    assert service.counts_by_grid(city, code_prefix="440109") == {}
    assert service.counts_by_grid(city, code_prefix="440104009") == {}


def test_the_city_code_counts_the_grids_of_its_districts(city: Session, clerk: Actor) -> None:
    fill_two_grids(city, clerk)

    counts = service.counts_by_grid(city, code_prefix="440100")

    assert sorted(counts) == sorted(MINI_GRID_CODES)
    assert counts[GRID].residents == 3


def test_a_grid_code_counts_that_grid_alone(city: Session, clerk: Actor) -> None:
    fill_two_grids(city, clerk)

    counts = service.counts_by_grid(city, code_prefix=GRID)

    assert list(counts) == [GRID]
    assert counts[GRID].buildings == 2


def test_the_summary_of_one_grid_has_its_names(city: Session, clerk: Actor) -> None:
    fill_two_grids(city, clerk)

    summary = service.grid_summary(city, grid_code=GRID)

    assert summary.code == GRID
    assert summary.name_zh and summary.name_en
    assert summary.residents == 3
    assert summary.components["manhole_cover"] == 2


@pytest.mark.parametrize("prefix", ["44O104", "4401040010010021", "-1", "4401040019", ""])
def test_a_prefix_that_is_no_unit_code_is_refused(city: Session, prefix: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        service.counts_by_grid(city, code_prefix=prefix)

    assert caught.value.details == [
        {"field": "code_prefix", "reason": "must be a code of 6, 9, 12 or 15 digits"}
    ]


def test_the_summary_of_an_unknown_grid_is_not_found(city: Session) -> None:
    with pytest.raises(NotFound):
        service.grid_summary(city, grid_code="440104009009009")
    with pytest.raises(NotFound):
        service.grid_summary(city, grid_code="440104001001000")
