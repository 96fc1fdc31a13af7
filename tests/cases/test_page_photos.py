"""Photos from the pages: the department's feedback (inbox, case page) and the grid
worker's verification (her verifications, case page) are multipart forms with a camera
input; the page route sends the files through the API's checks and storage. A bad photo
shows the form's page again with the reason by the field, and nothing changed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.cases.models import Case, CasePhoto, CaseState
from citygrid.kit.actor import Actor
from citygrid.kit.settings import Settings
from citygrid.territory.locator import Locator
from tests.cases.conftest import DISPATCHER, HOUSING, ZHANG
from tests.cases.helpers import count_transitions, file_case, step
from tests.cases.photo_factories import (
    camera_jpeg,
    files_under,
    png_image,
    text_pretending_to_be_jpeg,
)

ActAs = Callable[[Actor], None]
BROWSER = {"Accept": "text/html,application/xhtml+xml", "Accept-Language": "en"}


@pytest.fixture
def browser(client: TestClient) -> TestClient:
    client.headers.update(BROWSER)
    return client


@pytest.fixture
def media(app: FastAPI, settings: Settings, tmp_path: Path) -> Path:
    """A media directory of the test's own."""
    root = tmp_path / "media"
    app.state.settings = settings.model_copy(update={"media_dir": root})
    return root


@pytest.fixture
def tile(city: Session, locator: Locator) -> Case:
    """Zhang Sijun's broken tile, dispatched to housing and construction."""
    case = file_case(city, ZHANG, locator)
    step(city, DISPATCHER, case, "register")
    return step(city, DISPATCHER, case, "dispatch")


def being_handled(session: Session, case: Case) -> Case:
    return step(session, HOUSING, case, "accept")


def handled(session: Session, case: Case) -> Case:
    being_handled(session, case)
    return step(session, HOUSING, case, "feedback", note="three tiles replaced")


def photo_rows(session: Session, case: Case) -> list[CasePhoto]:
    session.expire_all()
    statement = select(CasePhoto).where(CasePhoto.case_id == case.id).order_by(CasePhoto.id)
    return list(session.scalars(statement))


def photo_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(CasePhoto)) or 0)


def state_of(session: Session, case: Case) -> CaseState:
    session.refresh(case)
    return case.state


def the_form(html: str, case: Case, action: str) -> str:
    """The HTML of one action form of a case on a page."""
    found = re.search(
        rf'<form[^>]*data-action="{action}" id="{case.ref}-{action}".*?</form>', html, re.S
    )
    assert found is not None, f"no {action} form for the case on the page"
    return found.group(0)


def send(
    client: TestClient, case: Case, fields: dict[str, str], *photos: tuple[str, bytes, str]
) -> Response:
    return client.post(
        f"/cases/{case.ref}/transitions",
        data=fields,
        files=[("photos", photo) for photo in photos],
        follow_redirects=False,
    )


def test_feedback_with_a_photo_from_the_inbox_is_shown_on_the_case_page(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, media: Path
) -> None:
    being_handled(city, tile)
    act_as(HOUSING)
    form = the_form(browser.get("/inbox").text, tile, "feedback")
    assert 'enctype="multipart/form-data"' in form
    assert re.search(
        r'<input [^>]*type="file" name="photos" accept="image/\*" capture="environment" multiple',
        form,
    )

    response = send(
        browser,
        tile,
        {"action": "feedback", "note": "three tiles replaced", "next": "/inbox"},
        ("after.jpg", camera_jpeg(size=(640, 480)), "image/jpeg"),
    )

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/inbox?done=feedback"
    assert state_of(city, tile) is CaseState.HANDLED
    [row] = photo_rows(city, tile)
    assert row.stage.value == "feedback"
    assert (media / row.storage_path).is_file()

    page = browser.get(f"/cases/{tile.ref}")
    assert page.status_code == 200
    thumbnail = f"/api/v1/cases/{tile.ref}/photos/{row.sha256}/thumbnail"
    assert f'src="{thumbnail}"' in page.text
    assert "With the department&#39;s feedback" in page.text
    shown = browser.get(thumbnail)
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"


def test_a_non_image_is_refused_on_the_inbox_and_nothing_changes(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, media: Path
) -> None:
    being_handled(city, tile)
    act_as(HOUSING)
    before = count_transitions(city)

    response = send(
        browser,
        tile,
        {"action": "feedback", "note": "three tiles replaced", "next": "/inbox"},
        ("after.jpg", text_pretending_to_be_jpeg(), "image/jpeg"),
    )

    assert response.status_code == 422
    # The inbox again, saying why by the photo field of that very form, the note kept.
    assert "<h1>Inbox" in response.text
    assert '<span class="code">photos[0]</span>' in response.text
    form = the_form(response.text, tile, "feedback")
    assert "the file is not an image (JPEG, PNG or WebP)" in form
    assert 'aria-invalid="true"' in form
    assert ">three tiles replaced</textarea>" in form
    assert state_of(city, tile) is CaseState.HANDLING
    assert count_transitions(city) == before
    assert photo_count(city) == 0
    assert files_under(media) == []


def test_the_grid_worker_verifies_with_a_photo_from_her_list(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, media: Path
) -> None:
    handled(city, tile)
    act_as(ZHANG)
    form = the_form(browser.get("/my/verifications").text, tile, "verify")
    assert 'enctype="multipart/form-data"' in form and 'name="photos"' in form

    response = send(
        browser,
        tile,
        {"action": "verify", "result": "pass", "note": "", "next": "/my/verifications"},
        ("site.png", png_image(), "image/png"),
        ("site2.jpg", camera_jpeg(size=(320, 240)), "image/jpeg"),
    )

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/my/verifications?done=verify"
    assert state_of(city, tile) is CaseState.CLOSED
    assert [row.stage.value for row in photo_rows(city, tile)] == ["verification"] * 2
    page = browser.get(f"/cases/{tile.ref}")
    assert page.text.count("At the verification on site") == 2


def test_a_bad_photo_on_the_verification_list_is_refused_and_nothing_changes(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, media: Path
) -> None:
    handled(city, tile)
    act_as(ZHANG)

    response = send(
        browser,
        tile,
        {
            "action": "verify",
            "result": "fail",
            "note": "one tile loose",
            "next": "/my/verifications",
        },
        ("site.jpg", camera_jpeg(), "image/jpeg"),
        ("empty.jpg", b"", "image/jpeg"),
    )

    assert response.status_code == 422
    assert "<h1>Cases to verify" in response.text
    assert '<span class="code">photos[1]</span>' in response.text
    assert "the file is empty" in the_form(response.text, tile, "verify")
    assert state_of(city, tile) is CaseState.HANDLED
    assert photo_count(city) == 0
    assert files_under(media) == []


def test_the_case_page_takes_feedback_photos_too(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, media: Path
) -> None:
    being_handled(city, tile)
    act_as(HOUSING)
    form = the_form(browser.get(f"/cases/{tile.ref}").text, tile, "feedback")
    assert 'name="next" value="/cases/' + tile.ref in form

    response = send(
        browser,
        tile,
        {"action": "feedback", "note": "replaced", "next": f"/cases/{tile.ref}"},
        ("after.jpg", camera_jpeg(), "image/jpeg"),
    )

    assert response.status_code == 303
    assert response.headers["location"] == f"/cases/{tile.ref}?done=feedback"
    assert [row.stage.value for row in photo_rows(city, tile)] == ["feedback"]


def test_photos_with_a_step_that_takes_none_are_refused_and_the_step_is_undone(
    browser: TestClient, act_as: ActAs, tile: Case, city: Session, media: Path
) -> None:
    # "accept" is taken, then the photos are refused: the step must not stay taken.
    act_as(HOUSING)
    before = count_transitions(city)

    response = send(
        browser, tile, {"action": "accept", "note": ""}, ("x.jpg", camera_jpeg(), "image/jpeg")
    )

    assert response.status_code == 422
    assert "not used by the action accept" in response.text
    assert "<h1>Floor tiles</h1>" in response.text  # the case page, where the form was
    assert state_of(city, tile) is CaseState.DISPATCHED
    assert count_transitions(city) == before
    assert photo_count(city) == 0
    assert files_under(media) == []


def test_too_many_photos_are_refused_naming_the_field(
    app: FastAPI, browser: TestClient, act_as: ActAs, tile: Case, city: Session, media: Path
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"photo_max_count": 1})
    being_handled(city, tile)
    act_as(HOUSING)
    photo = ("after.jpg", camera_jpeg(size=(64, 48)), "image/jpeg")

    response = send(browser, tile, {"action": "feedback", "note": "done"}, photo, photo)

    assert response.status_code == 422
    assert '<span class="code">photos</span>: at most 1 photos per submission' in response.text
    assert "Take or choose up to 1 photo (JPEG" in response.text
    assert state_of(city, tile) is CaseState.HANDLING
    assert photo_count(city) == 0
