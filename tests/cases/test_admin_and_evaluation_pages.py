"""The pages: the evaluation with its charts and table, and the administrator's catalogue."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.cases.models import CategoryOverride
from citygrid.kit.actor import Actor
from citygrid.territory.locator import Locator
from tests.cases.conftest import ADMIN, DISPATCHER, ZHANG
from tests.cases.helpers import file_case, step
from tests.fixtures_territory import DISTRICT_CODE

ActAs = Callable[[Actor], None]
ENGLISH = {"Accept-Language": "en", "Accept": "text/html"}


def test_the_evaluation_page_draws_charts_and_a_table(
    city: Session, locator: Locator, client: TestClient, act_as: ActAs
) -> None:
    case = file_case(city, ZHANG, locator)
    step(city, DISPATCHER, case, "register")
    act_as(DISPATCHER)

    page = client.get("/cases/evaluation", params={"group_by": "street"}, headers=ENGLISH)

    assert page.status_code == 200
    assert page.text.count("<svg") == 2
    assert "Closure rate" in page.text and "440104001" in page.text
    assert "/cases/evaluation.xlsx?group_by=street" in page.text


def test_the_evaluation_page_names_a_bad_field(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    page = client.get("/cases/evaluation", params={"from": "2026-02-30"}, headers=ENGLISH)

    assert page.status_code == 422
    assert 'id="evaluation-errors"' in page.text and "must be a date" in page.text


def test_the_administrator_edits_a_class_from_the_catalogue_page(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ADMIN)

    listing = client.get(
        "/admin/catalogue", params={"district_code": DISTRICT_CODE}, headers=ENGLISH
    )
    saved = client.post(
        "/admin/catalogue/C0201",
        data={"district_code": DISTRICT_CODE, "department": "transport", "deadline_high": "6h"},
        headers=ENGLISH,
        follow_redirects=False,
    )
    edit = client.get(saved.headers["location"], headers=ENGLISH)

    assert listing.status_code == 200 and "C0201" in listing.text
    assert saved.status_code == 303
    assert edit.status_code == 200 and 'id="catalogue-saved"' in edit.text
    assert "Transport" in edit.text and "admin" in edit.text  # the history
    row = city.scalars(select(CategoryOverride)).one()
    assert (row.department, row.deadline_high, row.updated_by) == ("transport", "6h", "admin")


def test_a_bad_value_on_the_page_is_named_and_nothing_is_saved(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(ADMIN)

    page = client.post(
        "/admin/catalogue/C0201",
        data={"district_code": DISTRICT_CODE, "deadline_urgent": "soon"},
        headers=ENGLISH,
    )

    assert page.status_code == 422
    assert "deadlines.urgent" in page.text and 'aria-invalid="true"' in page.text
    assert city.scalars(select(CategoryOverride)).all() == []


def test_the_catalogue_pages_are_for_administrators(
    city: Session, client: TestClient, act_as: ActAs
) -> None:
    act_as(DISPATCHER)

    listing = client.get("/admin/catalogue", headers=ENGLISH)
    post = client.post(
        "/admin/catalogue/C0201",
        data={"district_code": DISTRICT_CODE, "department": "transport"},
        headers=ENGLISH,
    )

    assert (listing.status_code, post.status_code) == (403, 403)
    assert city.scalars(select(CategoryOverride)).all() == []


def test_the_pages_render_in_chinese(city: Session, client: TestClient, act_as: ActAs) -> None:
    chinese = {"Accept-Language": "zh-CN", "Accept": "text/html"}
    act_as(DISPATCHER)
    evaluation = client.get("/cases/evaluation", headers=chinese)
    act_as(ADMIN)
    catalogue = client.get("/admin/catalogue/C0201", headers=chinese)

    assert evaluation.status_code == 200 and "按期结案率" in evaluation.text
    assert "90分位" in evaluation.text
    assert catalogue.status_code == 200 and "立案标准（中文）" in catalogue.text
