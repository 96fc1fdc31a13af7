"""The mini city with a few registry rows in one grid, for the page and browser tests.

    from tests.web.city import populate, FULL_GRID, EXPECTED

Only the counts matter to the pages; the residents' names and numbers are synthetic.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from citygrid.kit.actor import Actor
from citygrid.registry import service as registry
from citygrid.registry.catalogue import sync_component_classes
from citygrid.registry.idnumber import make_id_number
from tests.fixtures_territory import MINI_GRID_CODES, import_mini_city, point_in_grid

FULL_GRID = MINI_GRID_CODES[0]  # 440104001001001, 府前社区第1网格
EMPTY_GRID = MINI_GRID_CODES[4]  # 440104001002002, nothing registered

# What the grid page and the map must show for FULL_GRID.
EXPECTED = {
    "buildings": 2,
    "housing_units": 3,
    "households": 2,
    "residents": 3,
    "components": 6,
}
# Slug -> (class code, how many): the components of FULL_GRID.
COMPONENTS = {"manhole_cover": ("0101", 4), "fire_hydrant": ("0103", 2)}

CLERK = Actor(name="worker-0001", role="grid_worker")


def populate(session: Session) -> None:
    """Import the mini city and register a few rows in FULL_GRID (flushes, no commit)."""
    import_mini_city(session)
    sync_component_classes(session)
    lon, lat = point_in_grid(FULL_GRID)
    buildings = [
        registry.create_building(
            session,
            CLERK,
            data={
                "grid_code": FULL_GRID,
                "address": f"越秀区府前路 {number} 号",
                "lon": lon,
                "lat": lat,
                "floors": 6,
            },
        )
        for number in (1, 3)
    ]
    units = [
        registry.create_housing_unit(
            session,
            CLERK,
            data={"building_id": building.id, "floor": floor, "number": f"{floor}01", "use": use},
        )
        for building, floor, use in (
            (buildings[0], 1, "owner_occupied"),
            (buildings[0], 2, "rental"),
            (buildings[1], 1, "owner_occupied"),
        )
    ]
    households = [
        registry.create_household(
            session, CLERK, data={"unit_id": unit.id, "registration_type": "family"}
        )
        for unit in units[:2]
    ]
    for sequence, (household, relation) in enumerate(
        ((households[0], "head"), (households[0], "spouse"), (households[1], "head")), start=11
    ):
        registry.create_person(
            session,
            CLERK,
            data={
                "grid_code": FULL_GRID,
                "id_number": make_id_number("440104", date(1980, 1, sequence), sequence),
                "name": "测试居民",
                "ethnicity": "01",
                "population_type": "registered",
                "household_id": household.id,
                "relation_to_head": relation,
            },
        )
    for class_code, count in COMPONENTS.values():
        for _ in range(count):
            registry.create_component(
                session,
                CLERK,
                data={"class_code": class_code, "grid_code": FULL_GRID, "lon": lon, "lat": lat},
            )
    session.flush()
