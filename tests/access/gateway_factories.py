"""The small world of the gateway tests: two grids with residents, and the people who look.

    from tests.access.gateway_factories import populate, GRID_WORKER, PUBLIC_SECURITY

``populate(session)`` registers, through the registry service, in the seed grid
(``440104001001002``): a building with two units, a household of two in unit 101 (张三丰 and
李秀英) and a tenant in unit 102 (王小明); and in a grid of another street one resident
(赵六). It also stores one resident whose name holds SQL and LIKE meta-characters (as a legacy
import might have left it; the registry's validation would refuse it today).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.access.deps import current_actor
from citygrid.audit.models import AuditEntry
from citygrid.kit.actor import Actor
from citygrid.registry import service as registry
from citygrid.registry.idnumber import make_id_number
from citygrid.registry.models import Person
from tests.fixtures_territory import MINI_GRID_CODES, import_mini_city, point_in_grid

GRID = MINI_GRID_CODES[1]  # 440104001001002, the seed grid
NEIGHBOUR_GRID = MINI_GRID_CODES[2]  # 440104001001003, same community
OTHER_GRID = MINI_GRID_CODES[5]  # 440104002001001, another street
CLERK = Actor(name="clerk", role="system", kind="system")
# Registers the world; the entries its writes leave in the access log are not the tests' own.
REGISTRAR = Actor(name="registry-setup", role="system", kind="system")

GRID_WORKER = Actor(name="zhangsijun", role="grid_worker", scopes=(GRID,), kind="account")
PUBLIC_SECURITY = Actor(
    name="ps-officer",
    role="department_officer",
    department="public-security",
    scopes=("440104",),
    kind="account",
)
CIVIL_AFFAIRS = Actor(
    name="ca-officer",
    role="department_officer",
    department="civil-affairs",
    scopes=("440104",),
    kind="account",
)
COMMUNITY_OFFICIAL = Actor(
    name="community-official", role="community_official", scopes=(GRID[:12],), kind="account"
)
DISPATCHER = Actor(name="dispatcher", role="dispatcher", scopes=("440104",), kind="account")


@dataclass(frozen=True)
class World:
    """What ``populate`` made: refs by the resident's given name, ids of places."""

    refs: dict[str, str]
    id_numbers: dict[str, str]
    building_id: int
    unit_ids: dict[str, int]
    household_id: int
    other_building_id: int


def _person(
    session: Session, grid_code: str, name: str, born: date, sequence: int, **extra: Any
) -> Person:
    return registry.create_person(
        session,
        REGISTRAR,
        data={
            "grid_code": grid_code,
            "id_number": make_id_number("440104", born, sequence),
            "name": name,
            "ethnicity": "01",
            "population_type": "registered",
            **extra,
        },
    )


def populate(session: Session) -> World:
    """Register the world described above (flushes, does not commit)."""
    import_mini_city(session)
    lon, lat = point_in_grid(GRID)
    building = registry.create_building(
        session,
        REGISTRAR,
        data={
            "grid_code": GRID,
            "address": "越秀区府前路 1 号",
            "lon": lon,
            "lat": lat,
            "floors": 6,
        },
    )
    units = {
        number: registry.create_housing_unit(
            session,
            REGISTRAR,
            data={"building_id": building.id, "floor": 1, "number": number, "use": use},
        )
        for number, use in (("101", "owner_occupied"), ("102", "rental"))
    }
    household = registry.create_household(
        session, REGISTRAR, data={"unit_id": units["101"].id, "registration_type": "family"}
    )
    zhang = _person(
        session,
        GRID,
        "张三丰",
        date(1985, 3, 14),
        123,
        mobile="13812341234",
        landline="020-83001234",
        household_id=household.id,
        relation_to_head="head",
        marital_status="married",
    )
    li = _person(
        session,
        GRID,
        "李秀英",
        date(1987, 6, 2),
        124,
        mobile="13900001111",
        household_id=household.id,
        relation_to_head="spouse",
        marital_status="married",
    )
    wang = _person(
        session, GRID, "王小明", date(1990, 1, 1), 125, population_type="migrant", mobile=None
    )
    lon2, lat2 = point_in_grid(OTHER_GRID)
    other_building = registry.create_building(
        session,
        REGISTRAR,
        data={
            "grid_code": OTHER_GRID,
            "address": "越秀区东风路 9 号",
            "lon": lon2,
            "lat": lat2,
            "floors": 3,
        },
    )
    other_unit = registry.create_housing_unit(
        session,
        REGISTRAR,
        data={"building_id": other_building.id, "floor": 1, "number": "201", "use": "rental"},
    )
    zhao = _person(session, OTHER_GRID, "赵六", date(1970, 5, 5), 126, mobile="13700007777")
    since = date(2020, 1, 1)
    for person, unit, kind in (
        (zhang, units["101"], "registered_address"),
        (li, units["101"], "actual_residence"),
        (wang, units["102"], "tenant"),
        (zhao, other_unit, "tenant"),
    ):
        registry.create_residence(
            session,
            REGISTRAR,
            data={"person_id": person.id, "unit_id": unit.id, "kind": kind, "since": since},
        )
    # A legacy row: the registry's validation refuses such a name today.
    odd = Person(
        ref="oddnamexxxxxxxx1",
        grid_code=GRID,
        id_number=make_id_number("440104", date(1991, 2, 3), 127),
        name="百分%之_百",
        sex="M",
        birth_date=date(1991, 2, 3),
        ethnicity="01",
        population_type="registered",
    )
    session.add(odd)
    session.flush()
    people = {"张三丰": zhang, "李秀英": li, "王小明": wang, "赵六": zhao, "百分%之_百": odd}
    return World(
        refs={name: person.ref for name, person in people.items()},
        id_numbers={name: person.id_number for name, person in people.items()},
        building_id=building.id,
        unit_ids={number: unit.id for number, unit in units.items()},
        household_id=household.id,
        other_building_id=other_building.id,
    )


def entries(session: Session, **where: Any) -> list[AuditEntry]:
    """Access-log entries matching column values, oldest first (not those of ``populate``)."""
    statement = select(AuditEntry).where(AuditEntry.actor != REGISTRAR.name).order_by(AuditEntry.id)
    for column, value in where.items():
        statement = statement.where(getattr(AuditEntry, column) == value)
    return list(session.scalars(statement))


def act_as(app: FastAPI, actor: Actor) -> None:
    """Make every request of ``app`` come from ``actor`` (with the request's id)."""

    def _actor(request: Request) -> Actor:
        return Actor(
            name=actor.name,
            role=actor.role,
            department=actor.department,
            scopes=actor.scopes,
            kind=actor.kind,
            request_id=getattr(request.state, "request_id", None),
            client_address="203.0.113.7",
        )

    app.dependency_overrides[current_actor] = _actor


def client_as(app: FastAPI, actor: Actor, **options: Any) -> Iterator[TestClient]:
    """A client of ``app`` whose requests come from ``actor``."""
    act_as(app, actor)
    with TestClient(app, **options) as client:
        yield client


@pytest.fixture
def registry_fields_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The gateway with no field sources plugged in (the exchange may plug some into the
    process): these tests are about the registry's fields; one test plugs in its own."""
    monkeypatch.setattr(gateway, "_SOURCES", [])
    gateway._view.cache_clear()
    yield
    gateway._view.cache_clear()
