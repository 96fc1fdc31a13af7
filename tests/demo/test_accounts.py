"""The demo city comes with one account per role and one API client per department, and
``citygrid demo`` tells how to sign in."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from citygrid.access import accounts, totp
from citygrid.access.demo_accounts import (
    DEMO_ACCOUNT_SPECS,
    DEMO_CLIENT_DEPARTMENTS,
    demo_accounts_in,
)
from citygrid.cases.catalogue import load_catalogue
from citygrid.demo.cases import OFFICERS
from citygrid.kit.models import utcnow
from citygrid.kit.settings import DEMO_SECRET, Settings
from tests.demo.conftest import DemoBuild

CHEAP = Settings(demo_mode=True)


def test_the_demo_holds_the_accounts_and_clients(demo_engine: Engine) -> None:
    with Session(demo_engine) as session:
        found = demo_accounts_in(session)

    names = [item.name for item in found if item.kind == "account"]
    assert names == [spec.username for spec in DEMO_ACCOUNT_SPECS]
    assert [item.name for item in found if item.kind == "client"] == [
        "public-security",
        "family-planning",
        "civil-affairs",
        "social-security",
        "rental-housing",
        "housing-construction",
        "water-affairs",
    ]


def test_every_department_cases_go_to_has_someone_in_the_demo_to_handle_them() -> None:
    routed = {category.department for category in load_catalogue()}
    officers = {spec.username: spec.department for spec in DEMO_ACCOUNT_SPECS}

    for department in routed:
        assert department in OFFICERS or department in DEMO_CLIENT_DEPARTMENTS, department
    # The officer the demo's history names is an account of that very department.
    for department, username in OFFICERS.items():
        assert officers[username] == department
    # The departments without an API client of their own have an officer.
    assert {
        department: OFFICERS[department]
        for department in ("landscaping", "power-supply", "transport")
    } == {"landscaping": "ls-officer", "power-supply": "pw-officer", "transport": "tr-officer"}


def test_the_seed_grid_worker_signs_in_with_the_demo_password(demo_engine: Engine) -> None:
    with Session(demo_engine) as session:
        result = accounts.sign_in(
            session, CHEAP, username="zhangsijun", password=DEMO_SECRET, otp=None, address=None
        )
        session.rollback()

    assert result.ok


def test_a_district_official_signs_in_with_the_printed_totp_secret(
    sqlite_demo: DemoBuild, sqlite_demo_engine: Engine
) -> None:
    line = next(line for line in sqlite_demo.output.splitlines() if "district-official" in line)
    secret = line.rsplit("TOTP secret ", 1)[1].strip()
    code = totp.code_at(secret, totp.time_step(utcnow()))

    with Session(sqlite_demo_engine) as session:
        result = accounts.sign_in(
            session,
            CHEAP,
            username="district-official",
            password=DEMO_SECRET,
            otp=code,
            address=None,
        )
        session.rollback()

    assert result.ok


def test_demo_prints_the_password_and_the_clients(sqlite_demo: DemoBuild) -> None:
    assert "password 'citygrid-demo'" in sqlite_demo.output
    assert "zhangsijun" in sqlite_demo.output
    assert "pw-officer" in sqlite_demo.output and "tr-officer" in sqlite_demo.output
    assert "API clients (client secret 'citygrid-demo')" in sqlite_demo.output
    assert "public-security, family-planning" in sqlite_demo.output
