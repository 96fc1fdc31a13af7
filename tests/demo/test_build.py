"""The demo city as a visitor finds it: Yuexiu's streets, the seed grid exactly as in the
seed, valid ID numbers, people in households in buildings that stand in their grids."""

from __future__ import annotations

import json
import re
import sqlite3
from collections import Counter
from contextlib import closing
from datetime import date

import pytest
import shapely
from shapely.geometry import shape
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from citygrid.demo.builder import build_demo_database
from citygrid.demo.geography import build_territory
from citygrid.demo.population import COLUMNS, ComponentClassInfo, generate_rows
from citygrid.demo.seed import SEED_GRID_CODE
from citygrid.kit.db import make_engine
from citygrid.kit.errors import Conflict
from citygrid.registry.catalogue import load_component_classes
from citygrid.registry.idnumber import validate_id_number, validate_uscc
from citygrid.registry.models import Household
from citygrid.registry.service import grid_summary
from tests.demo.conftest import SEED, SMALL_RESIDENTS, DemoBuild

STREETS_ZH = (
    "洪桥", "北京", "六榕", "流花", "光塔", "人民", "东山", "农林", "梅花村",
    "黄花岗", "华乐", "建设", "大塘", "珠光", "大东", "白云", "登峰", "矿泉",
)  # fmt: skip


def scalar(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def rows(engine: Engine, sql: str, **params: object) -> list[tuple[object, ...]]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


def test_the_seed_grid_holds_exactly_the_seed(demo_engine: Engine) -> None:
    grid = {"grid": SEED_GRID_CODE}
    assert (
        scalar(demo_engine, "SELECT count(*) FROM buildings WHERE grid_code = :grid", **grid) == 11
    )
    assert (
        scalar(demo_engine, "SELECT max(floors) FROM buildings WHERE grid_code = :grid", **grid)
        <= 7
    )
    assert (
        scalar(demo_engine, "SELECT count(*) FROM households WHERE grid_code = :grid", **grid)
        == 214
    )
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM persons WHERE grid_code = :grid AND status = 'alive'",
            **grid,
        )
        == 903
    )
    by_class = dict(
        rows(
            demo_engine,
            "SELECT c.slug, count(*) FROM components p JOIN component_classes c "
            "ON c.code = p.class_code WHERE p.grid_code = :grid GROUP BY c.slug",
            **grid,
        )
    )
    assert by_class["manhole_cover"] == 18
    assert by_class["tree"] == 4
    assert by_class["flower_bed"] == 6


def test_the_registry_summary_of_the_seed_grid_shows_the_seed(demo_engine: Engine) -> None:
    with Session(demo_engine) as session:
        summary = grid_summary(session, grid_code=SEED_GRID_CODE)
    assert (summary.buildings, summary.households, summary.residents) == (11, 214, 903)
    assert summary.components["manhole_cover"] == 18
    assert summary.components["tree"] == 4
    assert summary.components["flower_bed"] == 6


def test_the_whole_city_has_the_residents_asked_for(demo_engine: Engine) -> None:
    assert scalar(demo_engine, "SELECT count(*) FROM persons") == SMALL_RESIDENTS
    # Other grids have people too, not only the seed grid.
    assert scalar(demo_engine, "SELECT count(DISTINCT grid_code) FROM persons") > 100


def test_yuexiu_has_its_eighteen_streets(demo_engine: Engine) -> None:
    streets = rows(
        demo_engine,
        "SELECT code, name_zh, name_en, parent_code FROM territorial_units "
        "WHERE level = 'street' ORDER BY code",
    )
    assert [name for _code, name, _en, _parent in streets] == [f"{s}街道" for s in STREETS_ZH]
    assert streets[0][:3] == ("440104001", "洪桥街道", "Hongqiao Subdistrict")
    assert {parent for *_rest, parent in streets} == {"440104"}
    district = rows(
        demo_engine,
        "SELECT name_zh, parent_code, area_m2 FROM territorial_units WHERE code = '440104'",
    )
    assert district[0][:2] == ("越秀区", "440100")
    # Yuexiu is about 33.8 km2.
    assert 32e6 < float(district[0][2]) < 35.5e6  # type: ignore[arg-type]


def test_grids_tile_the_district_and_nest_in_their_community(demo_engine: Engine) -> None:
    units = rows(demo_engine, "SELECT code, level, parent_code, geometry FROM territorial_units")
    geometry = {code: shape(json.loads(str(raw))) for code, _level, _parent, raw in units}
    grids = [(code, parent) for code, level, parent, _raw in units if level == "grid"]
    assert 3000 < len(grids) < 3800  # ~0.01 km2 each
    for code, parent in grids:
        assert parent == code[:12]
        assert geometry[parent].covers(geometry[code])
    communities = [code for code, level, _p, _g in units if level == "community"]
    assert 150 < len(communities) < 300
    union = shapely.union_all([geometry[code] for code, _parent in grids])
    total = sum(geometry[code].area for code, _parent in grids)
    # No overlaps (the areas add up to the union's) and no gaps (the union is the district).
    assert total == pytest.approx(union.area, rel=1e-9)
    assert union.symmetric_difference(geometry["440104"]).area < 1e-12
    # Not a plain rectangle: the outline fills well under its bounding box.
    assert geometry["440104"].area < 0.85 * geometry["440104"].envelope.area


def test_every_id_number_is_valid_and_agrees_with_birth_date_and_sex(demo_engine: Engine) -> None:
    people = rows(demo_engine, "SELECT id_number, birth_date, sex, population_type FROM persons")
    assert len(people) == SMALL_RESIDENTS
    assert len({number for number, *_rest in people}) == len(people)
    divisions: dict[str, Counter[str]] = {"registered": Counter(), "migrant": Counter()}
    for number, birth_date, sex, population_type in people:
        born = birth_date if isinstance(birth_date, date) else date.fromisoformat(str(birth_date))
        parsed = validate_id_number(str(number), birth_date=born, sex=str(sex))
        divisions[str(population_type)][parsed.division_code[:4]] += 1
    registered = divisions["registered"]
    migrant = divisions["migrant"]
    # Registered residents are mostly born in Guangzhou; migrants mostly in other provinces.
    assert registered["4401"] > 0.8 * sum(registered.values())
    assert sum(n for prefix, n in migrant.items() if not prefix.startswith("44")) > 0.6 * sum(
        migrant.values()
    )
    assert 0.15 < sum(migrant.values()) / len(people) < 0.45


def test_people_look_like_guangzhou_residents(demo_engine: Engine) -> None:
    people = rows(
        demo_engine,
        "SELECT name, ethnicity, mobile, birth_date, marital_status FROM persons",
    )
    surnames = Counter(str(name)[0] for name, *_rest in people)
    assert {"陈", "黄", "李"} <= {surname for surname, _n in surnames.most_common(8)}
    assert all(2 <= len(str(name)) <= 4 for name, *_rest in people)
    ethnic = Counter(str(code) for _name, code, *_rest in people)
    assert ethnic["01"] > 0.95 * len(people)  # Han (GB 3304 code 01)
    mobiles = [str(mobile) for _n, _e, mobile, *_rest in people if mobile is not None]
    assert len(mobiles) > 0.7 * len(people)
    assert all(re.fullmatch(r"1[3-9]\d{9}", mobile) for mobile in mobiles)
    for _name, _code, _mobile, birth_date, marital in people:
        born = birth_date if isinstance(birth_date, date) else date.fromisoformat(str(birth_date))
        adult = (date(2026, 1, 1) - born).days >= 18 * 365.25
        if not adult:
            assert marital is None
        else:
            assert marital in ("unmarried", "married", "divorced", "widowed")


def test_every_row_lies_in_an_existing_grid(demo_engine: Engine) -> None:
    for table in ("persons", "buildings", "housing_units", "households", "residences",
                  "components", "organisations"):  # fmt: skip
        stray = scalar(
            demo_engine,
            f"SELECT count(*) FROM {table} WHERE grid_code NOT IN "  # noqa: S608 - constant
            "(SELECT code FROM territorial_units WHERE level = 'grid')",
        )
        assert stray == 0, table
    # A unit is in its building's grid, a household in its unit's, a person in its household's.
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM housing_units u JOIN buildings b ON b.id = u.building_id "
            "WHERE u.grid_code <> b.grid_code",
        )
        == 0
    )
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM persons p JOIN households h ON h.id = p.household_id "
            "WHERE p.grid_code <> h.grid_code",
        )
        == 0
    )


def test_buildings_stand_inside_their_grid(demo_engine: Engine) -> None:
    polygons = {
        code: shape(json.loads(str(raw)))
        for code, raw in rows(
            demo_engine, "SELECT code, geometry FROM territorial_units WHERE level = 'grid'"
        )
    }
    buildings = rows(demo_engine, "SELECT grid_code, lon, lat, floors, address FROM buildings")
    assert buildings
    for grid_code, lon, lat, floors, address in buildings:
        assert polygons[str(grid_code)].contains(shapely.Point(float(lon), float(lat)))  # type: ignore[arg-type]
        assert 1 <= int(floors) <= 40  # type: ignore[call-overload]
        assert re.fullmatch(r"\S+路?\S*\d+号", str(address))
    tokens = rows(demo_engine, "SELECT count(DISTINCT qr_token), count(*) FROM buildings")
    assert tokens[0][0] == tokens[0][1]


def test_each_household_has_one_head_and_tenants_rent(demo_engine: Engine) -> None:
    heads = rows(
        demo_engine,
        "SELECT h.id, count(p.id) FROM households h LEFT JOIN persons p "
        "ON p.household_id = h.id AND p.relation_to_head = 'head' GROUP BY h.id",
    )
    assert heads and all(count == 1 for _household, count in heads)
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM residences r JOIN housing_units u ON u.id = r.unit_id "
            "WHERE r.kind = 'tenant' AND u.use <> 'rental'",
        )
        == 0
    )
    assert scalar(demo_engine, "SELECT count(*) FROM residences WHERE kind = 'tenant'") > 0
    # Everyone lives in their household's unit, which is a dwelling, not a shop.
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM persons p JOIN households h ON h.id = p.household_id "
            "JOIN residences r ON r.person_id = p.id WHERE r.unit_id <> h.unit_id",
        )
        == 0
    )
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM households h JOIN housing_units u ON u.id = h.unit_id "
            "WHERE u.use NOT IN ('owner_occupied', 'rental')",
        )
        == 0
    )
    uses = dict(rows(demo_engine, "SELECT use, count(*) FROM housing_units GROUP BY use"))
    assert set(uses) == {"owner_occupied", "rental", "vacant", "commercial"}
    numbers = [str(n) for (n,) in rows(demo_engine, "SELECT number FROM housing_units")]
    assert all(re.fullmatch(r"\d{4}", number) for number in numbers)


def test_organisations_have_valid_codes_and_employ_residents(demo_engine: Engine) -> None:
    organisations = rows(
        demo_engine,
        "SELECT o.uscc, o.kind, u.use FROM organisations o "
        "JOIN housing_units u ON u.id = o.unit_id",
    )
    assert organisations
    for uscc, kind, use in organisations:
        assert validate_uscc(str(uscc)) == uscc
        assert kind in ("employer", "shop")
        assert use == "commercial"
    assert scalar(demo_engine, "SELECT count(*) FROM organisations") == len(organisations)
    assert scalar(demo_engine, "SELECT count(*) FROM persons WHERE employer_id IS NOT NULL") > 0


def test_the_demo_load_is_the_initial_state_without_history(demo_engine: Engine) -> None:
    assert scalar(demo_engine, "SELECT count(*) FROM registry_changes") == 0


def test_the_same_seed_gives_the_same_people(sqlite_demo: DemoBuild) -> None:
    assert sqlite_demo.path is not None
    classes = [
        ComponentClassInfo(item.code, item.slug, item.owner_department)
        for item in load_component_classes()
    ]
    again = generate_rows(build_territory(SEED), classes, residents=SMALL_RESIDENTS, seed=SEED)
    other = generate_rows(
        build_territory(SEED + 1), classes, residents=SMALL_RESIDENTS, seed=SEED + 1
    )
    columns = ", ".join(COLUMNS["persons"])
    with closing(sqlite3.connect(sqlite_demo.path)) as connection:
        stored = connection.execute(f"SELECT {columns} FROM persons ORDER BY id").fetchall()  # noqa: S608
    assert stored == again.tables["persons"]
    assert stored != other.tables["persons"]
    shared = {row[5] for row in stored} & {row[5] for row in other.tables["persons"]}
    assert len(shared) < 0.05 * len(stored)  # ID numbers


def test_postgres_ids_continue_after_the_load(postgres_demo: DemoBuild) -> None:
    engine = make_engine(postgres_demo.url)
    try:
        with Session(engine) as session:
            highest = session.execute(text("SELECT max(id) FROM households")).scalar_one()
            household = Household(
                grid_code=SEED_GRID_CODE, unit_id=None, registration_type="family"
            )
            session.add(household)
            session.flush()
            assert household.id == highest + 1
            session.rollback()
    finally:
        engine.dispose()


def test_a_database_with_residents_is_not_built_into_again(postgres_demo: DemoBuild) -> None:
    engine = make_engine(postgres_demo.url)
    try:
        with pytest.raises(Conflict):
            build_demo_database(postgres_demo.url, residents=SMALL_RESIDENTS, seed=SEED + 1)
        assert scalar(engine, "SELECT count(*) FROM persons") == SMALL_RESIDENTS
        assert (
            scalar(engine, "SELECT count(*) FROM buildings WHERE grid_code = :g", g=SEED_GRID_CODE)
            == 11
        )
    finally:
        engine.dispose()
