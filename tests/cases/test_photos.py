"""Photos with a report: POST /api/v1/cases as multipart. The camera's position becomes the
case's location, every piece of metadata is gone from the stored file, a thumbnail is made,
the photo is served only inside the caller's territory, and each bad upload is refused
naming the field and the reason, with no case and no file left behind."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from citygrid.cases.models import CasePhoto
from citygrid.kit.actor import Actor
from citygrid.kit.settings import Settings
from tests.cases.conftest import DISPATCHER, FAR_GRID, HOUSING, NEIGHBOUR, TILE_GRID, ZHANG
from tests.cases.helpers import count_cases, tile_report
from tests.cases.photo_factories import (
    COMMENT,
    MAKE,
    camera_jpeg,
    files_under,
    png_bomb,
    png_image,
    text_pretending_to_be_jpeg,
)
from tests.fixtures_territory import point_in_grid

ActAs = Callable[[Actor], None]


@pytest.fixture
def media(app: FastAPI, settings: Settings, tmp_path: Path) -> Path:
    """A media directory of the test's own."""
    root = tmp_path / "media"
    app.state.settings = settings.model_copy(update={"media_dir": root})
    return root


def limit(app: FastAPI, **values: Any) -> None:
    """Change photo limits of the running app."""
    app.state.settings = app.state.settings.model_copy(update=values)


def form_of(report: dict[str, Any]) -> dict[str, str]:
    """The tile report as form fields."""
    return {key: str(value) for key, value in report.items()}


Part = tuple[str, tuple[str, bytes, str]]


def photos(*contents: bytes, name: str = "IMG_0001.jpg") -> list[Part]:
    """Multipart parts named ``photos``."""
    return [("photos", (name, content, "image/jpeg")) for content in contents]


def photo_count(session: Session) -> int:
    """How many photo rows the database holds."""
    return int(session.scalar(select(func.count()).select_from(CasePhoto)) or 0)


def test_the_camera_s_position_is_the_case_s_place_and_the_stored_photo_keeps_nothing_else(
    city: Session, client: TestClient, act_as: ActAs, media: Path
) -> None:
    act_as(ZHANG)
    lon, lat = point_in_grid(TILE_GRID)
    report = tile_report()
    del report["lat"], report["lon"]
    taken = camera_jpeg(lat=lat, lon=lon, orientation=6)

    response = client.post("/api/v1/cases", data=form_of(report), files=photos(taken))

    assert response.status_code == 201, response.text
    case = response.json()
    assert case["grid_code"] == TILE_GRID
    assert (round(case["lat"], 5), round(case["lon"], 5)) == (round(lat, 5), round(lon, 5))
    detail = client.get(f"/api/v1/cases/{case['id']}").json()
    (photo,) = detail["photos"]
    assert photo["stage"] == "reported"
    assert (photo["width"], photo["height"]) == (480, 640)  # turned upright
    served = client.get(photo["url"])
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert "private" in served.headers["cache-control"]
    assert "max-age" in served.headers["cache-control"]
    stored = Image.open(io.BytesIO(served.content))
    assert stored.size == (480, 640)
    assert dict(stored.getexif()) == {}
    assert not stored.getexif().get_ifd(0x8825)
    assert MAKE.encode() not in served.content
    assert COMMENT not in served.content
    assert b"Exif" not in served.content and b"http://ns.adobe.com/xap" not in served.content
    # The top-left corner was red before the camera's orientation (90 degrees) was applied:
    # upright, it is the top-right corner.
    red, green, _blue = stored.convert("RGB").getpixel((stored.width - 5, 5))  # type: ignore[misc]
    assert red > 150 and green < 80
    thumbnail = client.get(photo["thumbnail_url"])
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    small = Image.open(io.BytesIO(thumbnail.content))
    assert max(small.size) <= 400 and small.size[1] > small.size[0]
    assert dict(small.getexif()) == {}
    # Stored by content hash, never by the name the phone gave.
    names = [path.name for path in files_under(media)]
    assert f"{photo['id']}.jpg" in names and f"{photo['id']}.thumb.jpg" in names
    assert not any("IMG_0001" in name for name in names)


def test_a_given_location_wins_over_the_camera_s_and_a_png_is_accepted(
    city: Session, client: TestClient, act_as: ActAs, media: Path
) -> None:
    act_as(ZHANG)
    far_lon, far_lat = point_in_grid(FAR_GRID)

    response = client.post(
        "/api/v1/cases",
        data=form_of(tile_report()),
        files=photos(camera_jpeg(lat=far_lat, lon=far_lon), png_image(), name="a.png"),
    )

    assert response.status_code == 201, response.text
    assert response.json()["grid_code"] == TILE_GRID
    detail = client.get(f"/api/v1/cases/{response.json()['id']}").json()
    assert len(detail["photos"]) == 2
    png = client.get(detail["photos"][1]["url"])
    assert b"someone" not in png.content  # the PNG's text chunk is gone


def test_another_grid_s_worker_cannot_see_the_photos(
    city: Session, client: TestClient, act_as: ActAs, media: Path
) -> None:
    act_as(ZHANG)
    case = client.post("/api/v1/cases", data=form_of(tile_report()), files=photos(camera_jpeg()))
    photo = client.get(f"/api/v1/cases/{case.json()['id']}").json()["photos"][0]

    act_as(NEIGHBOUR)
    for url in (photo["url"], photo["thumbnail_url"]):
        refused = client.get(url)
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "not_found"
    act_as(DISPATCHER)
    served = client.get(photo["url"])
    assert served.status_code == 200
    again = client.get(photo["url"], headers={"If-None-Match": served.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert client.get(f"/api/v1/cases/{case.json()['id']}/photos/{'0' * 64}").status_code == 404


def test_a_double_submit_with_photos_makes_one_case_with_one_photo_set(
    city: Session, client: TestClient, act_as: ActAs, media: Path
) -> None:
    act_as(ZHANG)
    headers = {"Idempotency-Key": "2b3c4d5e-photo-submit"}
    parts = photos(camera_jpeg(), png_image())

    first = client.post("/api/v1/cases", data=form_of(tile_report()), files=parts, headers=headers)
    second = client.post("/api/v1/cases", data=form_of(tile_report()), files=parts, headers=headers)

    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert count_cases(city) == 1
    assert photo_count(city) == 2


def _refused(response: Any, field: str, words: str) -> None:
    assert 400 <= response.status_code < 500, response.text
    body = response.json()["error"]
    fields = {item["field"]: item["reason"] for item in body["details"]}
    assert field in fields, body
    assert words in fields[field], body


@pytest.mark.parametrize(
    ("case", "field", "words"),
    [
        ("too_large", "photos[0]", "larger than"),
        ("not_an_image", "photos[0]", "not an image"),
        ("bomb", "photos[0]", "megapixels"),
        ("too_many", "photos", "at most 2 photos"),
        ("outside_the_city", "lat", "outside the city"),
        ("unknown_category", "category", "unknown category"),
        ("description_too_long", "description", "at most 2000 characters"),
        ("no_location_at_all", "lat", "give the location"),
        ("not_a_number", "lat", "valid number"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_leaves_nothing(
    city: Session,
    client: TestClient,
    act_as: ActAs,
    app: FastAPI,
    media: Path,
    case: str,
    field: str,
    words: str,
) -> None:
    act_as(ZHANG)
    limit(app, photo_max_count=2, photo_max_bytes=200_000)
    report = tile_report()
    parts = photos(camera_jpeg())
    if case == "too_large":
        parts = photos(camera_jpeg(size=(900, 700), noise=True))
    elif case == "not_an_image":
        parts = photos(text_pretending_to_be_jpeg(), name="photo.jpg")
    elif case == "bomb":
        parts = photos(png_bomb(), name="tiny.png")
    elif case == "too_many":
        parts = photos(camera_jpeg(), camera_jpeg(), camera_jpeg())
    elif case == "outside_the_city":
        report.update(lat=39.9042, lon=116.4074)  # Beijing
    elif case == "unknown_category":
        report["category"] = "C9999"
    elif case == "description_too_long":
        report["description"] = "x" * 2001
    elif case == "no_location_at_all":
        del report["lat"], report["lon"]
    elif case == "not_a_number":
        report["lat"] = "north"

    response = client.post("/api/v1/cases", data=form_of(report), files=parts)

    _refused(response, field, words)
    assert count_cases(city) == 0
    assert photo_count(city) == 0
    assert files_under(media) == []


def test_a_bomb_under_pillow_s_own_threshold_is_refused_by_the_setting(
    city: Session, client: TestClient, act_as: ActAs, app: FastAPI, media: Path
) -> None:
    act_as(ZHANG)
    limit(app, photo_max_pixels=200_000)

    response = client.post(
        "/api/v1/cases",
        data=form_of(tile_report()),
        files=photos(camera_jpeg(size=(800, 600))),
    )

    _refused(response, "photos[0]", "more than 0.2 megapixels")
    assert count_cases(city) == 0 and files_under(media) == []


def test_an_oversized_request_is_refused_before_it_is_read(
    city: Session, client: TestClient, act_as: ActAs, app: FastAPI, media: Path
) -> None:
    act_as(ZHANG)
    limit(app, photo_max_count=1, photo_max_bytes=1024)

    response = client.post(
        "/api/v1/cases",
        data=form_of(tile_report()),
        files=photos(camera_jpeg(size=(1200, 900), noise=True)),
    )

    assert response.status_code == 413
    assert response.json()["error"]["details"][0]["field"] == "photos"
    assert count_cases(city) == 0


def _to_handling(client: TestClient, act_as: ActAs, ref: str) -> None:
    act_as(DISPATCHER)
    assert client.post(f"/api/v1/cases/{ref}/transitions", json={"action": "register"}).is_success
    assert client.post(f"/api/v1/cases/{ref}/transitions", json={"action": "dispatch"}).is_success
    act_as(HOUSING)
    assert client.post(f"/api/v1/cases/{ref}/transitions", json={"action": "accept"}).is_success


def test_the_department_s_feedback_and_the_verification_carry_photos(
    city: Session, client: TestClient, act_as: ActAs, media: Path
) -> None:
    act_as(ZHANG)
    ref = client.post("/api/v1/cases", json=tile_report()).json()["id"]
    _to_handling(client, act_as, ref)

    feedback = client.post(
        f"/api/v1/cases/{ref}/transitions",
        data={"action": "feedback", "note": "Tiles replaced"},
        files=photos(camera_jpeg(size=(320, 240))),
    )
    act_as(ZHANG)
    verified = client.post(
        f"/api/v1/cases/{ref}/transitions",
        data={"action": "verify", "result": "pass"},
        files=photos(png_image()),
    )

    assert feedback.status_code == 200, feedback.text
    assert verified.status_code == 200, verified.text
    assert [photo["stage"] for photo in verified.json()["photos"]] == ["feedback", "verification"]
    assert verified.json()["state"] == "closed"


def test_photos_with_a_step_that_takes_none_change_nothing(
    city: Session, client: TestClient, act_as: ActAs, media: Path
) -> None:
    act_as(ZHANG)
    ref = client.post("/api/v1/cases", json=tile_report()).json()["id"]
    act_as(DISPATCHER)

    response = client.post(
        f"/api/v1/cases/{ref}/transitions",
        data={"action": "register"},
        files=photos(camera_jpeg()),
    )

    _refused(response, "photos", "not used by the action register")
    assert client.get(f"/api/v1/cases/{ref}").json()["state"] == "reported"
    assert photo_count(city) == 0
    assert files_under(media) == []


def test_a_large_camera_photo_is_stored_at_most_2048_pixels_wide() -> None:
    from citygrid.cases.photos import PhotoLimits, process

    limits = PhotoLimits(max_bytes=20_000_000, max_count=1, max_pixels=50_000_000)

    landscape = process(camera_jpeg(size=(4000, 3000)), limits)
    portrait = process(camera_jpeg(size=(3000, 2000), orientation=6), limits)
    png = process(png_image(size=(3000, 1000)), limits)

    assert (landscape.width, landscape.height) == (2000, 1500)  # decoded at half size
    assert max(portrait.width, portrait.height) <= 2048 and portrait.height > portrait.width
    assert (png.width, png.height) == (2048, 683)
