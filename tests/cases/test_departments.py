"""Every department a case can be routed to is a department people can work for: its
officers have accounts, and a case dispatched to it waits in their inbox (landscaping, which
the catalogue routes trees and green spaces to, once could not have an officer)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.access import accounts
from citygrid.cases.catalogue import load_catalogue
from citygrid.kit.settings import Settings
from citygrid.registry.schemas import DEPARTMENT_SLUGS
from citygrid.territory.locator import Locator
from tests.access.auth_factories import (
    BROWSER,
    fast_settings_fixture,  # noqa: F401 (fixture)
    make_account,
    request_scoped_app_fixture,  # noqa: F401 (fixture)
    sign_in,
)
from tests.cases.conftest import DISPATCHER, ZHANG
from tests.cases.helpers import file_case, step
from tests.fixtures_territory import DISTRICT_CODE


def test_every_department_the_catalogue_routes_to_can_have_officers() -> None:
    routed = {category.department for category in load_catalogue()}

    assert "landscaping" in routed
    # Administrators may route a category to any case department (district overrides).
    assert routed <= DEPARTMENT_SLUGS
    assert set(DEPARTMENT_SLUGS) <= set(accounts.DEPARTMENTS)


def test_a_tree_case_dispatched_to_landscaping_waits_in_the_landscaping_officers_inbox(
    city: Session, settings: Settings, locator: Locator, client: TestClient
) -> None:
    officer = make_account(
        city,
        settings,
        "luo.qingshan",
        role="department_officer",
        department="landscaping",
        scopes=(DISTRICT_CODE,),
    )
    make_account(
        city,
        settings,
        "wu.zhiming",
        role="department_officer",
        department="urban-management",
        scopes=(DISTRICT_CODE,),
    )
    tree = file_case(city, ZHANG, locator, category="C0401", description="Street tree leaning")
    step(city, DISPATCHER, tree, "register")
    step(city, DISPATCHER, tree, "dispatch")
    assert tree.department == "landscaping"

    # Landscaping reveals no personal data: a password signs its officer in (no TOTP).
    assert officer.totp_secret is None
    sign_in(client, "luo.qingshan")
    inbox = client.get("/inbox", headers=BROWSER)

    assert inbox.status_code == 200
    assert tree.ref in inbox.text
    assert "No case is waiting for your department." not in inbox.text
    # Urban management, which handles most street cases, does not get it.
    client.cookies.clear()
    sign_in(client, "wu.zhiming")
    other = client.get("/inbox", headers=BROWSER)
    assert other.status_code == 200 and tree.ref not in other.text
