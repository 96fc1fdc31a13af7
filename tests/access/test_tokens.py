"""Department systems and people get bearer tokens at ``POST /api/v1/auth/token``."""

from __future__ import annotations

import base64

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from citygrid.access import accounts
from citygrid.access.tokens import issue_token, read_token
from citygrid.kit.i18n import set_locale
from citygrid.kit.settings import Settings
from tests.access.auth_factories import (
    ADMIN,
    PASSWORD,
    SEED_GRID,
    current_code,
    fast_settings,
    make_account,
    make_client,
    request_scoped_app_fixture,  # noqa: F401 (fixture)
    sign_in,
    token_for,
)
from tests.fixtures_territory import import_mini_city


@pytest.fixture
def settings(database_url: str) -> Settings:
    return fast_settings(database_url, secret_key="test-secret-key-for-tokens")


@pytest.fixture(autouse=True)
def _english() -> None:
    set_locale("en")


@pytest.fixture
def city(db_session: Session, settings: Settings) -> Session:
    import_mini_city(db_session)
    make_account(db_session, settings, "zhang")
    return db_session


@pytest.fixture
def client_secret(city: Session, settings: Settings) -> str:
    return make_client(city, settings).secret


@pytest.fixture
def official_secret(city: Session, settings: Settings) -> str:
    """A district official needs a TOTP code; returns the TOTP secret."""
    created = make_account(city, settings, "liu", role="district_official", scopes=("440104",))
    assert created.totp_secret
    return created.totp_secret


def me(client: TestClient, token: str) -> tuple[int, dict[str, object]]:
    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    return response.status_code, response.json()


def basic(client_id: str, secret: str) -> dict[str, str]:
    pair = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


# ----------------------------------------------------------------------------- client credentials


def test_a_department_system_gets_a_token_with_its_client_credentials(
    client_secret: str, client: TestClient
) -> None:
    response = token_for(
        client,
        grant_type="client_credentials",
        client_id="public-security",
        client_secret=client_secret,
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    status, caller = me(client, body["access_token"])
    assert status == 200
    assert caller == {
        "name": "public-security",
        "kind": "client",
        "display_name": "public-security",
        "role": "department_officer",
        "department": "public-security",
        "scopes": ["440104"],
    }


def test_http_basic_authentication_works_too(client_secret: str, client: TestClient) -> None:
    response = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials"},
        headers=basic("public-security", client_secret),
    )

    assert response.status_code == 200


def test_credentials_in_the_body_and_in_basic_at_once_are_refused(
    client_secret: str, client: TestClient
) -> None:
    response = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": "public-security"},
        headers=basic("public-security", client_secret),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [("public-security", "not-the-secret-at-all"), ("no-such-client", "whatever-secret")],
    ids=["bad secret", "unknown client"],
)
def test_a_bad_secret_or_unknown_client_is_invalid_client(
    client_secret: str, client: TestClient, client_id: str, secret: str
) -> None:
    response = token_for(
        client, grant_type="client_credentials", client_id=client_id, client_secret=secret
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert set(response.json()) == {"error", "error_description"}
    assert response.headers["www-authenticate"].startswith("Basic")


def test_a_revoked_client_gets_no_token_and_its_tokens_stop(
    client_secret: str, client: TestClient, city: Session
) -> None:
    token = token_for(
        client,
        grant_type="client_credentials",
        client_id="public-security",
        client_secret=client_secret,
    ).json()["access_token"]

    accounts.revoke_client(city, ADMIN, client_id="public-security")

    assert me(client, token)[0] == 401
    again = token_for(
        client,
        grant_type="client_credentials",
        client_id="public-security",
        client_secret=client_secret,
    )
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_client"


# ----------------------------------------------------------------------------- password grant


def test_a_grid_worker_gets_a_token_with_the_password_grant(
    city: Session, client: TestClient
) -> None:
    response = token_for(client, grant_type="password", username="zhang", password=PASSWORD)

    assert response.status_code == 200
    status, caller = me(client, response.json()["access_token"])
    assert status == 200
    assert caller["name"] == "zhang"
    assert caller["kind"] == "account"
    assert caller["scopes"] == ["440104001001002"]


def test_a_wrong_password_is_invalid_grant(city: Session, client: TestClient) -> None:
    response = token_for(client, grant_type="password", username="zhang", password="nope-nope-1")

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_a_disabled_account_gets_no_token_and_its_tokens_stop(
    city: Session, client: TestClient
) -> None:
    token = token_for(client, grant_type="password", username="zhang", password=PASSWORD).json()[
        "access_token"
    ]

    accounts.disable_account(city, ADMIN, username="zhang")

    assert me(client, token)[0] == 401
    again = token_for(client, grant_type="password", username="zhang", password=PASSWORD)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_an_account_with_a_second_factor_must_send_otp(
    official_secret: str, client: TestClient
) -> None:
    response = token_for(client, grant_type="password", username="liu", password=PASSWORD)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "otp" in response.json()["error_description"]


def test_a_wrong_otp_is_refused(official_secret: str, client: TestClient) -> None:
    wrong = "000000" if current_code(official_secret) != "000000" else "111111"

    response = token_for(
        client, grant_type="password", username="liu", password=PASSWORD, otp=wrong
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_the_right_otp_gives_a_token_once(official_secret: str, client: TestClient) -> None:
    code = current_code(official_secret)

    first = token_for(client, grant_type="password", username="liu", password=PASSWORD, otp=code)
    replay = token_for(client, grant_type="password", username="liu", password=PASSWORD, otp=code)
    # The next step's code is still within the drift allowed, and not used yet.
    later = current_code(official_secret, steps_ahead=1)
    next_step = token_for(
        client, grant_type="password", username="liu", password=PASSWORD, otp=later
    )

    assert first.status_code == 200
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert "used already" in replay.json()["error_description"]
    assert next_step.status_code == 200


def test_an_older_code_after_a_newer_one_is_refused(
    official_secret: str, client: TestClient
) -> None:
    newer = current_code(official_secret, steps_ahead=1)
    older = current_code(official_secret)
    assert (
        token_for(
            client, grant_type="password", username="liu", password=PASSWORD, otp=newer
        ).status_code
        == 200
    )

    response = token_for(
        client, grant_type="password", username="liu", password=PASSWORD, otp=older
    )

    assert response.status_code == 400


# ----------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
        ({"grant_type": "password", "username": "zhang"}, "invalid_request"),
    ],
    ids=["no grant type", "unsupported grant", "no password"],
)
def test_malformed_requests_get_oauth_errors(
    city: Session, client: TestClient, fields: dict[str, str], error: str
) -> None:
    response = token_for(client, **fields)

    assert response.status_code == 400
    assert response.json()["error"] == error


# ----------------------------------------------------------------------------- bad tokens


def _account_token(client: TestClient) -> str:
    response = token_for(client, grant_type="password", username="zhang", password=PASSWORD)
    token: str = response.json()["access_token"]
    return token


def test_an_expired_token_is_refused(city: Session, client: TestClient, settings: Settings) -> None:
    account = accounts.sign_in(
        city, settings, username="zhang", password=PASSWORD, otp=None, address=None
    )
    assert account.subject_id is not None
    expired = issue_token(
        settings.require_secret_key(), kind="account", subject_id=account.subject_id, ttl_seconds=-1
    )

    response = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})

    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_a_token_signed_with_another_key_is_refused(city: Session, client: TestClient) -> None:
    forged = issue_token("somebody-elses-key", kind="account", subject_id=1, ttl_seconds=900)

    assert me(client, forged)[0] == 401


def test_a_token_with_another_subject_is_refused(
    city: Session, client: TestClient, client_secret: str
) -> None:
    token = _account_token(client)
    prefix, kind, subject, rest = token.split(".", 3)
    for tampered in (
        f"{prefix}.c.{subject}.{rest}",  # an account's token passed off as a client's
        f"{prefix}.{kind}.{int(subject) + 1}.{rest}",  # someone else's id
        token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # a changed signature
        "cg1.a.1.9999999999.00.x",
    ):
        assert me(client, tampered)[0] == 401, tampered


def test_a_bad_bearer_token_never_falls_back_to_the_cookie(
    city: Session, client: TestClient
) -> None:
    sign_in(client)

    status, _body = me(client, "not-a-token")

    assert status == 401


def test_the_token_lifetime_is_a_setting(
    city: Session, app: FastAPI, database_url: str, client: TestClient
) -> None:
    app.state.settings = fast_settings(
        database_url, secret_key="test-secret-key-for-tokens", access_token_ttl_seconds=60
    )

    response = token_for(client, grant_type="password", username="zhang", password=PASSWORD)

    assert response.json()["expires_in"] == 60
    claims = read_token("test-secret-key-for-tokens", response.json()["access_token"])
    assert claims is not None and claims.kind == "account"


def test_token_claims_round_trip() -> None:
    token = issue_token("k", kind="client", subject_id=7, ttl_seconds=900)

    claims = read_token("k", token)

    assert claims is not None
    assert (claims.kind, claims.subject_id) == ("client", 7)
    assert read_token("k", token, now=claims.expires_at) is None
    assert read_token("other", token) is None


def test_a_city_wide_client_sees_the_districts_of_its_city(
    city: Session, settings: Settings, client: TestClient
) -> None:
    # A city's code (440100) is not the start of its grids' codes (440104...): the scope
    # must still cover them.
    secret = make_client(city, settings, "city-ps", scopes=("440100",)).secret
    token = token_for(
        client, grant_type="client_credentials", client_id="city-ps", client_secret=secret
    ).json()["access_token"]

    response = client.get(
        f"/api/v1/grids/{SEED_GRID}/persons",
        params={"purpose": "public-security-duty"},
        headers={"Authorization": f"Bearer {token}"},
    )

    # Out of scope would be 404.
    assert response.status_code == 200, response.text
    assert me(client, token)[1]["scopes"] == ["4401"]
