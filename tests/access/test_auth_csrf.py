"""Forms carry a CSRF token: without it (or with someone else's) nothing happens."""

from __future__ import annotations

import re
from typing import Annotated

import pytest
from fastapi import FastAPI, Form
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.access.deps import CurrentActor
from citygrid.access.models import Account
from citygrid.kit.i18n import set_locale
from citygrid.kit.settings import Settings
from citygrid.kit.web import SessionDep
from tests.access.auth_factories import (
    BROWSER,
    PASSWORD,
    csrf_in,
    fast_settings_fixture,  # noqa: F401 (fixture)
    make_account,
    request_scoped_app,
    sign_in,
    token_for,
    web_session_rows,
)
from tests.fixtures_territory import import_mini_city

CSRF_INPUTS = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def _english() -> None:
    set_locale("en")


@pytest.fixture
def app(settings: Settings, db_session: Session) -> FastAPI:
    """The app plus a form route that changes something (renames the caller)."""
    application = request_scoped_app(settings, db_session)

    @application.post("/rename")
    def rename(
        actor: CurrentActor, session: SessionDep, display_name: Annotated[str, Form()]
    ) -> dict[str, str]:
        account = session.get(Account, actor.account_id)
        assert account is not None
        account.display_name = display_name
        session.flush()
        return {"display_name": display_name}

    return application


@pytest.fixture
def city(db_session: Session, settings: Settings) -> Session:
    import_mini_city(db_session)
    make_account(db_session, settings, "zhang", display_name="张思君")
    make_account(db_session, settings, "wang", display_name="王芳")
    return db_session


def display_name(session: Session, username: str) -> str:
    session.expire_all()
    return session.scalars(select(Account.display_name).where(Account.username == username)).one()


def page_token(client: TestClient) -> str:
    return csrf_in(client.get("/map", headers=BROWSER).text)


def test_a_form_without_its_token_is_refused_and_changes_nothing(
    city: Session, client: TestClient
) -> None:
    sign_in(client)

    response = client.post("/rename", data={"display_name": "Mallory"}, headers=BROWSER)

    assert response.status_code == 403
    assert "security token" in response.text
    assert display_name(city, "zhang") == "张思君"


def test_a_form_with_a_wrong_token_is_refused(city: Session, client: TestClient) -> None:
    sign_in(client)

    response = client.post(
        "/rename", data={"display_name": "Mallory", "csrf_token": "guessed"}, headers=BROWSER
    )

    assert response.status_code == 403
    assert display_name(city, "zhang") == "张思君"


def test_the_token_of_another_session_does_not_work(
    city: Session, client: TestClient, app: FastAPI
) -> None:
    with TestClient(app) as other:
        sign_in(other, username="wang")
        others_token = page_token(other)
    sign_in(client)

    response = client.post(
        "/rename", data={"display_name": "Mallory", "csrf_token": others_token}, headers=BROWSER
    )

    assert response.status_code == 403
    assert display_name(city, "zhang") == "张思君"


def test_a_form_with_its_token_goes_through(city: Session, client: TestClient) -> None:
    sign_in(client)

    response = client.post(
        "/rename", data={"display_name": "张思君 (网格员)", "csrf_token": page_token(client)}
    )

    assert response.status_code == 200
    assert display_name(city, "zhang") == "张思君 (网格员)"


def test_a_multipart_form_carries_the_token_too(city: Session, client: TestClient) -> None:
    sign_in(client)

    response = client.post(
        "/rename",
        data={"display_name": "with photo", "csrf_token": page_token(client)},
        files={"photo": ("tile.jpg", b"\xff\xd8\xff", "image/jpeg")},
    )

    assert response.status_code == 200


def test_scripts_send_the_token_in_a_header(city: Session, client: TestClient) -> None:
    sign_in(client)

    response = client.post(
        "/rename",
        data={"display_name": "from a script"},
        headers={"X-CSRF-Token": page_token(client)},
    )

    assert response.status_code == 200


def test_bearer_token_calls_need_no_csrf_token(city: Session, client: TestClient) -> None:
    access_token = token_for(
        client, grant_type="password", username="zhang", password=PASSWORD
    ).json()["access_token"]

    response = client.post(
        "/rename",
        data={"display_name": "via the API"},
        headers={"Authorization": f"Bearer {access_token}"},
    )

    assert response.status_code == 200
    assert display_name(city, "zhang") == "via the API"


def test_sign_out_without_its_token_is_refused_and_the_session_stays(
    city: Session, client: TestClient
) -> None:
    sign_in(client)

    response = client.post("/signout", headers=BROWSER, follow_redirects=False)

    assert response.status_code == 403
    assert len(web_session_rows(city)) == 1
    assert client.get("/api/v1/auth/me").status_code == 200


def test_the_sign_in_form_without_its_token_is_refused(city: Session, client: TestClient) -> None:
    client.get("/signin", headers=BROWSER)  # the double-submit cookie is set

    response = client.post(
        "/signin", data={"username": "zhang", "password": PASSWORD}, follow_redirects=False
    )

    assert response.status_code == 403
    assert "citygrid_session" not in client.cookies
    assert web_session_rows(city) == []


def test_the_sign_in_form_token_must_match_its_cookie(city: Session, client: TestClient) -> None:
    # An attacker's page posts a token of its own: the victim's browser has another cookie.
    with TestClient(client.app) as attacker:
        attackers_token = csrf_in(attacker.get("/signin", headers=BROWSER).text)
    client.get("/signin", headers=BROWSER)

    response = client.post(
        "/signin",
        data={"username": "zhang", "password": PASSWORD, "csrf_token": attackers_token},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert web_session_rows(city) == []


def test_a_forged_sign_in_token_is_refused_even_when_cookie_and_field_agree(
    city: Session, client: TestClient
) -> None:
    forged = "abc.1700000000.not-a-signature"
    client.cookies.set("citygrid_signin_csrf", forged, path="/signin")

    response = client.post(
        "/signin",
        data={"username": "zhang", "password": PASSWORD, "csrf_token": forged},
        follow_redirects=False,
    )

    assert response.status_code == 403
    assert web_session_rows(city) == []


def test_csrf_field_renders_the_sessions_token_in_any_template(
    city: Session, client: TestClient
) -> None:
    sign_in(client)
    [row] = web_session_rows(city)

    page = client.get("/map", headers=BROWSER)

    assert f'<input type="hidden" name="csrf_token" value="{row.csrf_token}">' in page.text


def test_a_sign_in_page_shown_to_a_signed_in_user_keeps_both_tokens_apart(
    city: Session, client: TestClient
) -> None:
    form = client.get("/signin", headers=BROWSER)  # a second tab, opened before signing in
    sign_in(client)
    [row] = web_session_rows(city)

    page = client.post(
        "/signin",
        data={"csrf_token": csrf_in(form.text), "username": "zhang", "password": "wrong guess!"},
        headers=BROWSER,
    )

    tokens = CSRF_INPUTS.findall(page.text)
    assert row.csrf_token in tokens  # the header's sign-out form
    assert client.cookies["citygrid_signin_csrf"] in tokens  # the sign-in form
