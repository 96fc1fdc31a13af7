"""Signing in with the form, staying signed in, and being sent back to the form."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from citygrid.access.deps import CurrentActor
from citygrid.access.models import Account
from citygrid.access.tokens import hash_token
from citygrid.kit.i18n import set_locale
from citygrid.kit.settings import Settings
from tests.access.auth_factories import (
    BROWSER,
    PASSWORD,
    age_sessions,
    csrf_in,
    current_code,
    fast_settings,
    fast_settings_fixture,  # noqa: F401 (fixture)
    make_account,
    post_signin,
    request_scoped_app_fixture,  # noqa: F401 (fixture)
    sign_in,
    web_session_rows,
)
from tests.fixtures_territory import import_mini_city


@pytest.fixture
def city(db_session: Session, settings: Settings) -> Session:
    import_mini_city(db_session)
    make_account(db_session, settings, "zhang", display_name="张思君")
    return db_session


@pytest.fixture
def app_with_private_page(app: FastAPI) -> FastAPI:
    """The app plus a page and an API route that need a signed-in caller."""

    @app.get("/private")
    def private(actor: CurrentActor) -> dict[str, str]:
        return {"name": actor.name}

    @app.get("/api/v1/private")
    def private_api(actor: CurrentActor) -> dict[str, object]:
        return {
            "name": actor.name,
            "role": actor.role,
            "kind": actor.kind,
            "scopes": list(actor.scopes),
            "account_id": actor.account_id,
            "request_id": actor.request_id,
            "client_address": actor.client_address,
        }

    return app


@pytest.fixture(autouse=True)
def _english() -> None:
    set_locale("en")


def set_cookie_headers(response: object) -> list[str]:
    return response.headers.get_list("set-cookie")  # type: ignore[attr-defined]


def session_cookie_header(response: object) -> str:
    [header] = [h for h in set_cookie_headers(response) if h.startswith("citygrid_session=")]
    return header


# ----------------------------------------------------------------------------- signing in


def test_the_form_signs_a_grid_worker_in_and_the_header_shows_who(
    city: Session, client: TestClient
) -> None:
    response = sign_in(client, next_path="/map")

    assert response.headers["location"] == "/map"
    page = client.get("/map", headers=BROWSER)
    assert "张思君" in page.text
    assert "Grid worker" in page.text
    assert 'action="/signout"' in page.text
    [row] = web_session_rows(city)
    # Only the hash of the cookie's token is stored.
    token = client.cookies["citygrid_session"]
    assert row.token_hash == hash_token(token)
    assert token not in row.token_hash


def test_a_visitor_sees_a_sign_in_link(city: Session, client: TestClient) -> None:
    page = client.get("/map", headers=BROWSER)

    assert 'href="/signin?next=' in page.text
    assert 'action="/signout"' not in page.text


def test_a_wrong_password_gives_a_generic_message_and_no_session(
    city: Session, client: TestClient
) -> None:
    wrong = post_signin(client, username="zhang", password="not the password")
    unknown = post_signin(client, username="nobody-here", password="not the password")

    for response in (wrong, unknown):
        assert response.status_code == 401
        assert "The user name or password is wrong" in response.text
        assert "citygrid_session" not in response.headers.get("set-cookie", "")
    assert web_session_rows(city) == []


def test_a_disabled_account_cannot_sign_in(city: Session, client: TestClient) -> None:
    account = city.scalars(select(Account).where(Account.username == "zhang")).one()
    account.disabled = True
    city.flush()

    response = post_signin(client, username="zhang", password=PASSWORD)

    assert response.status_code == 401
    assert "The user name or password is wrong" in response.text


def test_user_names_are_not_case_sensitive(city: Session, client: TestClient) -> None:
    sign_in(client, username="  ZHANG ")

    assert client.get("/api/v1/auth/me").json()["name"] == "zhang"


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:x"]
)
def test_next_goes_only_to_local_paths(city: Session, client: TestClient, target: str) -> None:
    response = sign_in(client, next_path=target)

    assert response.headers["location"] == "/"


def test_signing_in_again_replaces_the_session(city: Session, client: TestClient) -> None:
    form = client.get("/signin", headers=BROWSER)  # a second tab, opened before signing in
    sign_in(client)
    first = client.cookies["citygrid_session"]

    again = client.post(
        "/signin",
        data={"csrf_token": csrf_in(form.text), "username": "zhang", "password": PASSWORD},
        headers=BROWSER,
        follow_redirects=False,
    )

    assert again.status_code == 303

    [row] = web_session_rows(city)
    assert row.token_hash == hash_token(client.cookies["citygrid_session"])
    assert row.token_hash != hash_token(first)


def test_a_signed_in_user_opening_the_form_goes_straight_on(
    city: Session, client: TestClient
) -> None:
    sign_in(client)

    response = client.get("/signin?next=/map", headers=BROWSER, follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/map"


# ----------------------------------------------------------------------------- the cookie


def test_the_session_cookie_is_http_only_and_same_site_lax(
    city: Session, client: TestClient
) -> None:
    response = sign_in(client)

    header = session_cookie_header(response).lower()
    assert "httponly" in header
    assert "samesite=lax" in header
    assert "path=/" in header
    assert "secure" not in header  # plain HTTP (a developer's machine)


def test_the_cookie_is_secure_over_https(city: Session, app: FastAPI) -> None:
    with TestClient(app, base_url="https://testserver") as client:
        response = sign_in(client)

    assert "secure" in session_cookie_header(response).lower()


@pytest.mark.parametrize(("trusted", "secure"), [(True, True), (False, False)])
def test_behind_a_proxy_the_forwarded_scheme_counts_only_when_trusted(
    city: Session, app: FastAPI, database_url: str, trusted: bool, secure: bool
) -> None:
    app.state.settings = fast_settings(database_url, trust_proxy_headers=trusted)
    proxy = {**BROWSER, "X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with TestClient(app, headers=proxy) as client:
        form = client.get("/signin")
        # Sent by hand: the test client keeps Secure cookies away from plain http.
        form_cookie = form.cookies["citygrid_signin_csrf"]
        client.cookies.clear()
        response = client.post(
            "/signin",
            data={"csrf_token": csrf_in(form.text), "username": "zhang", "password": PASSWORD},
            headers={"Cookie": f"citygrid_signin_csrf={form_cookie}"},
            follow_redirects=False,
        )

    assert response.status_code == 303
    assert ("secure" in session_cookie_header(response).lower()) is secure
    [row] = web_session_rows(city)
    assert row.client_address == ("203.0.113.9" if trusted else "testclient")


# ----------------------------------------------------------------------------- who is calling


def test_current_actor_carries_the_account_and_the_request(
    city: Session, app_with_private_page: FastAPI
) -> None:
    with TestClient(app_with_private_page) as client:
        sign_in(client)
        response = client.get("/api/v1/private", headers={"X-Request-ID": "req-42"})

    account = city.scalars(select(Account).where(Account.username == "zhang")).one()
    assert response.json() == {
        "name": "zhang",
        "role": "grid_worker",
        "kind": "account",
        "scopes": ["440104001001002"],
        "account_id": account.id,
        "request_id": "req-42",
        "client_address": "testclient",
    }


def test_a_page_without_a_session_redirects_to_the_sign_in_form(
    city: Session, app_with_private_page: FastAPI
) -> None:
    with TestClient(app_with_private_page, headers=BROWSER) as client:
        response = client.get("/private?tab=2", follow_redirects=False)

    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/signin"
    assert parse_qs(location.query)["next"] == ["/private?tab=2"]


def test_the_api_without_credentials_answers_401_with_a_bearer_challenge(
    city: Session, app_with_private_page: FastAPI
) -> None:
    with TestClient(app_with_private_page, headers=BROWSER) as client:
        response = client.get("/api/v1/private")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == "not_authenticated"


def test_after_signing_in_the_user_comes_back_to_the_page(
    city: Session, app_with_private_page: FastAPI
) -> None:
    with TestClient(app_with_private_page, headers=BROWSER) as client:
        redirect = client.get("/private", follow_redirects=False)
        next_path = parse_qs(urlsplit(redirect.headers["location"]).query)["next"][0]
        response = sign_in(client, next_path=next_path)
        assert response.headers["location"] == "/private"
        assert client.get("/private").json() == {"name": "zhang"}


# ----------------------------------------------------------------------------- expiry


@pytest.mark.parametrize(
    ("idle", "age"),
    [
        (timedelta(minutes=31), timedelta(minutes=31)),  # idle for longer than 30 minutes
        (timedelta(0), timedelta(hours=12, minutes=1)),  # busy, but older than 12 hours
    ],
    ids=["idle", "absolute"],
)
def test_an_expired_session_sends_the_user_back_to_sign_in(
    city: Session, app_with_private_page: FastAPI, idle: timedelta, age: timedelta
) -> None:
    with TestClient(app_with_private_page, headers=BROWSER) as client:
        sign_in(client)
        age_sessions(city, idle=idle, age=age)

        response = client.get("/private", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/signin?next=%2Fprivate"
    # The browser is told to forget the dead cookie.
    assert 'citygrid_session=""' in response.headers["set-cookie"]


def test_signing_in_clears_the_accounts_expired_sessions(city: Session, app: FastAPI) -> None:
    with TestClient(app, headers=BROWSER) as old_browser:
        sign_in(old_browser)
    age_sessions(city, idle=timedelta(hours=1), age=timedelta(hours=1))
    with TestClient(app, headers=BROWSER) as new_browser:
        sign_in(new_browser)
        token = new_browser.cookies["citygrid_session"]

    [row] = web_session_rows(city)
    assert row.token_hash == hash_token(token)


def test_a_session_just_inside_its_limits_stays(
    city: Session, app_with_private_page: FastAPI
) -> None:
    with TestClient(app_with_private_page, headers=BROWSER) as client:
        sign_in(client)
        age_sessions(city, idle=timedelta(minutes=29), age=timedelta(hours=11, minutes=59))

        response = client.get("/private", follow_redirects=False)

    assert response.status_code == 200
    [row] = web_session_rows(city)
    # Seen more than a minute ago: the request moved last_seen_at to now.
    assert row.created_at.replace(tzinfo=None) < row.last_seen_at.replace(tzinfo=None)


def test_activity_is_written_at_most_once_a_minute(city: Session, client: TestClient) -> None:
    sign_in(client)
    [before] = web_session_rows(city)
    seen = before.last_seen_at

    client.get("/api/v1/auth/me")
    client.get("/api/v1/auth/me")

    [after] = web_session_rows(city)
    assert after.last_seen_at == seen


def test_the_idle_limit_is_a_setting(
    city: Session, app_with_private_page: FastAPI, database_url: str
) -> None:
    app_with_private_page.state.settings = fast_settings(database_url, session_idle_minutes=5)
    with TestClient(app_with_private_page, headers=BROWSER) as client:
        sign_in(client)
        age_sessions(city, idle=timedelta(minutes=6), age=timedelta(minutes=6))
        response = client.get("/private", follow_redirects=False)

    assert response.status_code == 303


# ----------------------------------------------------------------------------- signing out


def test_signing_out_deletes_the_session(city: Session, client: TestClient) -> None:
    sign_in(client)
    page = client.get("/map", headers=BROWSER)
    token = client.cookies["citygrid_session"]

    response = client.post(
        "/signout", data={"csrf_token": csrf_in(page.text)}, follow_redirects=False
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/signin"
    assert web_session_rows(city) == []
    # The old cookie, replayed, opens nothing.
    client.cookies.set("citygrid_session", token)
    assert client.get("/api/v1/auth/me").status_code == 401


# ----------------------------------------------------------------------------- second factor


@pytest.fixture
def official(city: Session, settings: Settings) -> str:
    """A district official (needs TOTP); returns the TOTP secret."""
    created = make_account(
        city, settings, "liu", role="district_official", scopes=("440104",), display_name="刘志强"
    )
    assert created.totp_secret
    return created.totp_secret


def test_a_district_official_is_asked_for_the_code_after_the_password(
    official: str, client: TestClient
) -> None:
    first = post_signin(client, username="liu", password=PASSWORD)

    assert first.status_code == 200
    assert 'name="otp"' in first.text
    assert 'name="password"' not in first.text  # the password is not asked for (or sent) again
    assert "citygrid_session" not in first.headers.get("set-cookie", "")

    second = client.post(
        "/signin",
        data={"csrf_token": csrf_in(first.text), "otp": current_code(official), "next": "/map"},
        headers=BROWSER,
        follow_redirects=False,
    )

    assert second.status_code == 303
    assert second.headers["location"] == "/map"
    assert client.get("/api/v1/auth/me").json()["name"] == "liu"


def test_a_wrong_code_is_refused_and_asked_again(official: str, client: TestClient) -> None:
    first = post_signin(client, username="liu", password=PASSWORD)
    wrong = "000000" if current_code(official) != "000000" else "111111"

    second = client.post(
        "/signin",
        data={"csrf_token": csrf_in(first.text), "otp": wrong},
        headers=BROWSER,
        follow_redirects=False,
    )

    assert second.status_code == 401
    assert 'name="otp"' in second.text
    assert "The code is wrong" in second.text
    assert client.get("/api/v1/auth/me").status_code == 401


def test_a_code_cannot_be_used_twice(official: str, client: TestClient, app: FastAPI) -> None:
    code = current_code(official)
    first = post_signin(client, username="liu", password=PASSWORD)
    client.post("/signin", data={"csrf_token": csrf_in(first.text), "otp": code}, headers=BROWSER)
    assert client.get("/api/v1/auth/me").status_code == 200

    with TestClient(app) as other:
        again = post_signin(other, username="liu", password=PASSWORD)
        replay = other.post(
            "/signin",
            data={"csrf_token": csrf_in(again.text), "otp": code},
            headers=BROWSER,
            follow_redirects=False,
        )
        assert replay.status_code == 401
        assert other.get("/api/v1/auth/me").status_code == 401


def test_the_code_step_without_the_password_step_signs_nobody_in(
    official: str, client: TestClient
) -> None:
    form = client.get("/signin", headers=BROWSER)

    response = client.post(
        "/signin",
        data={"csrf_token": csrf_in(form.text), "otp": current_code(official)},
        headers=BROWSER,
        follow_redirects=False,
    )

    assert response.status_code == 401
    assert client.get("/api/v1/auth/me").status_code == 401


def test_a_forged_second_step_cookie_is_ignored(
    official: str, client: TestClient, city: Session
) -> None:
    liu = city.scalars(select(Account).where(Account.username == "liu")).one()
    form = client.get("/signin", headers=BROWSER)
    client.cookies.set("citygrid_signin_2fa", f"{liu.id}.9999999999.x.forged", path="/signin")

    response = client.post(
        "/signin",
        data={"csrf_token": csrf_in(form.text), "otp": current_code(official)},
        headers=BROWSER,
        follow_redirects=False,
    )

    assert response.status_code == 401
    assert client.get("/api/v1/auth/me").status_code == 401


def test_the_page_header_of_an_error_shows_the_user(city: Session, client: TestClient) -> None:
    sign_in(client)

    page = client.get("/grids/999999999999999", headers=BROWSER)

    assert page.status_code in (404, 422)
    assert "张思君" in page.text
