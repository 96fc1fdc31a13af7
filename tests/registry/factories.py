"""Factories of valid registry input that a test then spoils one field at a time."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.registry.idnumber import make_id_number, make_uscc
from citygrid.registry.models import (
    Building,
    Component,
    Household,
    HousingUnit,
    Organisation,
    Person,
    RegistryChange,
    Residence,
)
from tests.fixtures_territory import MINI_GRID_CODES, point_in_grid

GRID = MINI_GRID_CODES[1]  # 440104001001002
OTHER_GRID = MINI_GRID_CODES[5]  # 440104002001001, in another street
UNKNOWN_GRID = "440104009009009"

REGISTRY_TABLES = (
    Building,
    HousingUnit,
    Household,
    Person,
    Residence,
    Component,
    Organisation,
    RegistryChange,
)

_sequences = itertools.count(1)


def row_counts(session: Session) -> dict[str, int]:
    """How many rows each registry table holds."""
    return {
        model.__tablename__: session.execute(select(func.count()).select_from(model)).scalar_one()
        for model in REGISTRY_TABLES
    }


def building_data(grid_code: str = GRID, **overrides: Any) -> dict[str, Any]:
    """A valid new building in the grid."""
    lon, lat = point_in_grid(grid_code) if grid_code in MINI_GRID_CODES else (113.27, 23.13)
    data: dict[str, Any] = {
        "grid_code": grid_code,
        "address": "越秀区北京路 12 号",
        "name": "北京路 12 号楼",
        "lon": lon,
        "lat": lat,
        "floors": 7,
        "built_year": 1998,
    }
    return data | overrides


def person_data(
    grid_code: str = GRID,
    *,
    birth_date: date = date(1985, 3, 14),
    male: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid new resident in the grid, with a fresh ID number."""
    sequence = (next(_sequences) * 2) % 1000  # even: female
    if male:
        sequence += 1
    data: dict[str, Any] = {
        "grid_code": grid_code,
        "id_number": make_id_number("440104", birth_date, sequence),
        "name": "王小明",
        "sex": "M" if male else "F",
        "birth_date": birth_date,
        "ethnicity": "01",
        "population_type": "registered",
        "mobile": "13800138000",
    }
    return data | overrides


def uscc(serial: int | None = None) -> str:
    """A valid unified social credit code."""
    number = next(_sequences) if serial is None else serial
    return make_uscc(f"91440104MA{number:07d}")
