"""The intake pages as people use them, signed in for real: the grid worker's form, the
hotline entry, and the public report page (double-submit token, rate limit, tracking
reference). Each form posts, makes its case, and goes where it should; a bad form shows
the reason by the field and makes nothing."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.cases.models import Case, CasePhoto
from tests.access.auth_factories import BROWSER, csrf_in, fast_settings, make_account, sign_in
from tests.cases.conftest import FAR_GRID, TILE_GRID
from tests.cases.helpers import count_cases, tile_report
from tests.cases.photo_factories import camera_jpeg, files_under
from tests.fixtures_territory import STREET_CODES, import_mini_city, point_in_grid

HIDDEN = re.compile(r'name="(?P<name>report_token|idempotency_key)" value="(?P<value>[^"]*)"')


@pytest.fixture
def media(tmp_path: Path) -> Path:
    """The media directory of the test."""
    return tmp_path / "media"


@pytest.fixture
def web(database_url: str, db_session: Session, media: Path) -> Iterator[TestClient]:
    """A browser-like client of an app whose requests are units of work in the test's
    transaction, over the mini city, with a grid worker and a street official."""
    from tests.access.auth_factories import request_scoped_app

    settings = fast_settings(database_url, media_dir=media, public_report_limit=3)
    import_mini_city(db_session)
    make_account(db_session, settings, "zhang", role="grid_worker", scopes=(TILE_GRID,))
    # A street official takes hotline calls too (and needs no second factor: one street).
    make_account(db_session, settings, "street", role="street_official", scopes=(STREET_CODES[0],))
    db_session.flush()
    app: FastAPI = request_scoped_app(settings, db_session)
    with TestClient(app, headers=BROWSER) as client:
        yield client


def hidden(html: str) -> dict[str, str]:
    """The hidden token and key fields of a form."""
    return {match["name"]: match["value"] for match in HIDDEN.finditer(html)}


def report_form(**overrides: Any) -> dict[str, str]:
    """The tile report as the form's fields."""
    return {key: str(value) for key, value in tile_report(**overrides).items()}


def photo_part() -> list[tuple[str, tuple[str, bytes, str]]]:
    """One photo from the tablet's camera."""
    return [("photos", ("IMG_2031.jpg", camera_jpeg(), "image/jpeg"))]


def case_of(session: Session, ref: str) -> Case:
    """The case with a reference."""
    return session.scalars(select(Case).where(Case.ref == ref)).one()


def photos_of(session: Session, case: Case) -> list[CasePhoto]:
    """The photo rows of a case."""
    return list(session.scalars(select(CasePhoto).where(CasePhoto.case_id == case.id)))


def test_the_grid_worker_files_from_her_tablet_and_lands_on_the_case_page(
    web: TestClient, db_session: Session, media: Path
) -> None:
    sign_in(web, "zhang")
    page = web.get("/cases/new")
    assert page.status_code == 200
    html = page.text
    assert 'type="file" accept="image/*" capture="environment" multiple' in html
    assert f'data-grid="{TILE_GRID}"' in html
    assert "<optgroup" in html and 'value="C0201"' in html
    assert 'name="lat"' in html and 'name="lon"' in html
    assert 'name="reporter_phone"' not in html  # no caller on patrol

    response = web.post(
        "/cases/new",
        data={"csrf_token": csrf_in(html), **hidden(html), **report_form()},
        files=photo_part(),
        follow_redirects=False,
    )

    assert response.status_code == 303, response.text
    ref = response.headers["location"].removeprefix("/cases/")
    case = case_of(db_session, ref)
    assert case.source.value == "grid_worker" and case.grid_code == TILE_GRID
    assert case.reporter_name == "zhang"
    assert len(photos_of(db_session, case)) == 1
    assert len(files_under(media)) == 2  # the photo and its thumbnail


def test_the_same_form_sent_twice_makes_one_case(web: TestClient, db_session: Session) -> None:
    sign_in(web, "zhang")
    html = web.get("/cases/new").text
    data = {"csrf_token": csrf_in(html), **hidden(html), **report_form()}

    first = web.post("/cases/new", data=data, files=photo_part(), follow_redirects=False)
    second = web.post("/cases/new", data=data, files=photo_part(), follow_redirects=False)

    assert first.headers["location"] == second.headers["location"]
    assert count_cases(db_session) == 1
    assert len(photos_of(db_session, case_of(db_session, first.headers["location"][7:]))) == 1


def test_a_bad_form_shows_the_reason_by_the_field_and_files_nothing(
    web: TestClient, db_session: Session, media: Path
) -> None:
    sign_in(web, "zhang")
    html = web.get("/cases/new").text
    far_lon, far_lat = point_in_grid(FAR_GRID)

    unknown = web.post(
        "/cases/new",
        data={"csrf_token": csrf_in(html), **report_form(category="C9999")},
        files=photo_part(),
    )
    outside = web.post(
        "/cases/new",
        data={"csrf_token": csrf_in(html), **report_form(lat=far_lat, lon=far_lon)},
    )
    not_a_photo = web.post(
        "/cases/new",
        data={"csrf_token": csrf_in(html), **report_form()},
        files=[("photos", ("x.jpg", b"just text", "image/jpeg"))],
    )

    assert unknown.status_code == 422
    assert 'id="category-error"' in unknown.text and "unknown category" in unknown.text
    assert "Three pavement tiles broken" in unknown.text  # what she typed is kept
    assert outside.status_code == 422 and "outside your territory" in outside.text
    assert not_a_photo.status_code == 422 and "not an image" in not_a_photo.text
    assert count_cases(db_session) == 0
    assert files_under(media) == []


def test_without_the_form_s_token_nothing_is_filed(web: TestClient, db_session: Session) -> None:
    sign_in(web, "zhang")

    response = web.post("/cases/new", data=report_form(), files=photo_part())

    assert response.status_code == 403
    assert count_cases(db_session) == 0


def test_staff_enter_a_hotline_call_with_the_caller_s_contact(
    web: TestClient, db_session: Session
) -> None:
    sign_in(web, "street")
    html = web.get("/cases/new?via=hotline").text
    assert 'name="reporter_name"' in html and 'name="reporter_phone"' in html

    response = web.post(
        "/cases/new",
        data={
            "csrf_token": csrf_in(html),
            **hidden(html),
            "via": "hotline",
            **report_form(),
            "reporter_name": "王小明",
            "reporter_phone": "13800138000",
        },
        follow_redirects=False,
    )

    assert response.status_code == 303, response.text
    case = case_of(db_session, response.headers["location"].removeprefix("/cases/"))
    assert case.source.value == "hotline"
    assert (case.reporter_contact_name, case.reporter_contact_phone) == ("王小明", "13800138000")


def test_a_resident_reports_without_an_account_and_gets_a_tracking_reference(
    web: TestClient, db_session: Session
) -> None:
    page = web.get("/report")
    assert page.status_code == 200
    assert web.cookies.get("citygrid_report_csrf")
    fields = hidden(page.text)
    data = {**fields, **report_form(), "reporter_phone": "13900139000"}
    del data["priority"]

    first = web.post("/report", data=data, files=photo_part())
    again = web.post("/report", data=data, files=photo_part())

    assert first.status_code == 201, first.text
    reference = re.search(r"data-tracking-reference>([^<]+)<", first.text)
    assert reference is not None
    case = case_of(db_session, reference.group(1))
    assert case.source.value == "citizen" and case.grid_code == TILE_GRID
    assert case.reporter_contact_phone == "13900139000"
    assert case.priority.value == "normal"
    assert again.status_code == 200 and reference.group(1) in again.text
    assert count_cases(db_session) == 1
    assert len(photos_of(db_session, case)) == 1


def test_a_report_without_the_page_s_token_is_refused(web: TestClient, db_session: Session) -> None:
    fields = hidden(web.get("/report").text)
    web.cookies.clear()

    no_cookie = web.post("/report", data={**fields, **report_form()})
    web.get("/report")
    forged = web.post("/report", data={**fields, "report_token": "x.1.y", **report_form()})

    assert no_cookie.status_code == 403 and forged.status_code == 403
    assert count_cases(db_session) == 0


def test_one_address_may_file_only_so_many_reports(web: TestClient, db_session: Session) -> None:
    statuses = []
    for _attempt in range(4):
        fields = hidden(web.get("/report").text)
        response = web.post("/report", data={**fields, **report_form()})
        statuses.append(response.status_code)

    assert statuses == [201, 201, 201, 429]
    assert int(response.headers["retry-after"]) > 0
    assert count_cases(db_session) == 3


def test_a_refused_report_does_not_use_up_the_quota(web: TestClient, db_session: Session) -> None:
    statuses = []
    for attempt in range(5):
        fields = hidden(web.get("/report").text)
        category = "C9999" if attempt < 2 else "C0201"
        statuses.append(web.post("/report", data={**fields, **report_form(category=category)}))

    assert [response.status_code for response in statuses] == [422, 422, 201, 201, 201]
    assert "unknown category" in statuses[0].text
    assert count_cases(db_session) == 3
