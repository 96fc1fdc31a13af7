"""The demo's departments hold their data from the start: allowances, pensions, marital
statuses, tenancies and criminal record flags, consistent with the registry."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from citygrid.demo.datasets import department_rows
from citygrid.demo.geography import build_territory
from citygrid.demo.population import ComponentClassInfo, generate_rows
from citygrid.demo.seed import SEED_GRID_CODE
from citygrid.exchange.models import AllowanceRecord
from citygrid.registry.catalogue import load_component_classes
from tests.demo.conftest import SEED, SMALL_RESIDENTS


def scalar(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def test_every_department_holds_its_dataset(demo_engine: Engine) -> None:
    allowances = scalar(demo_engine, "SELECT count(*) FROM exchange_allowances")
    assert 0.008 * SMALL_RESIDENTS <= allowances <= 0.025 * SMALL_RESIDENTS
    assert scalar(demo_engine, "SELECT count(*) FROM exchange_pensions") > 0.1 * SMALL_RESIDENTS
    assert scalar(demo_engine, "SELECT count(*) FROM exchange_marital_statuses") > 0
    criminal = scalar(demo_engine, "SELECT count(*) FROM exchange_criminal_records")
    assert 0 < criminal < 0.01 * SMALL_RESIDENTS


def test_the_data_agrees_with_the_registry(demo_engine: Engine) -> None:
    # Allowances go with the household register; pensions start at pension age.
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM exchange_allowances a JOIN persons p ON p.id = a.person_id "
            "WHERE p.population_type <> 'registered' OR p.grid_code <> a.grid_code",
        )
        == 0
    )
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM exchange_pensions s JOIN persons p ON p.id = s.person_id "
            "WHERE s.since < p.birth_date OR p.birth_date > :youngest",
            youngest=date(1971, 1, 1),
        )
        == 0
    )
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM exchange_marital_statuses m JOIN persons p "
            "ON p.id = m.person_id WHERE p.marital_status IS NULL "
            "OR p.marital_status <> m.marital_status",
        )
        == 0
    )
    # One tenancy for every rented residence: the same flat, from the same day.
    tenants = scalar(demo_engine, "SELECT count(*) FROM residences WHERE kind = 'tenant'")
    assert tenants > 0
    assert scalar(demo_engine, "SELECT count(*) FROM exchange_tenancies") == tenants
    assert (
        scalar(
            demo_engine,
            "SELECT count(*) FROM exchange_tenancies t JOIN residences r "
            "ON r.person_id = t.person_id AND r.unit_id = t.unit_id AND r.since = t.since "
            "WHERE r.kind = 'tenant' AND t.status = 'active'",
        )
        == tenants
    )
    # Nothing starts in the future.
    for table in ("exchange_allowances", "exchange_pensions", "exchange_tenancies"):
        assert scalar(demo_engine, f"SELECT count(*) FROM {table} WHERE since > '2026-01-01'") == 0  # noqa: S608


def test_the_seed_grid_has_the_story_s_allowance_recipient(demo_engine: Engine) -> None:
    with Session(demo_engine) as session:
        active = session.scalars(
            select(AllowanceRecord)
            .where(AllowanceRecord.grid_code == SEED_GRID_CODE)
            .where(AllowanceRecord.status == "active")
        ).all()
        assert active
        assert all(isinstance(row.amount, Decimal) and 0 < row.amount <= 1120 for row in active)
    assert (
        scalar(demo_engine, "SELECT count(*) FROM persons WHERE grid_code = :g", g=SEED_GRID_CODE)
        == 903
    )


def test_the_same_seed_gives_the_same_department_data() -> None:
    classes = [
        ComponentClassInfo(item.code, item.slug, item.owner_department)
        for item in load_component_classes()
    ]
    territory = build_territory(SEED)
    first = generate_rows(territory, classes, residents=SMALL_RESIDENTS, seed=SEED)
    second = generate_rows(territory, classes, residents=SMALL_RESIDENTS, seed=SEED)
    department_rows(first, seed=SEED)
    department_rows(second, seed=SEED)
    for table in ("exchange_allowances", "exchange_pensions", "exchange_criminal_records"):
        assert first.tables[table] == second.tables[table]
    other = generate_rows(territory, classes, residents=SMALL_RESIDENTS, seed=SEED + 1)
    department_rows(other, seed=SEED + 1)
    assert other.tables["exchange_allowances"] != first.tables["exchange_allowances"]
