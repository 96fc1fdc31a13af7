"""The OAuth 2.0 token endpoint for department systems and people, and "who am I".

``POST /api/v1/auth/token`` (RFC 6749, form-encoded):

- ``grant_type=client_credentials`` with ``client_id`` and ``client_secret`` in the body or
  in HTTP Basic authentication (not both);
- ``grant_type=password`` with ``username``, ``password`` and, for accounts that need a
  second factor, ``otp`` (the current TOTP code).

Success: ``{"access_token", "token_type": "Bearer", "expires_in"}``. Errors use the OAuth
shape ``{"error", "error_description"}`` (RFC 6749 section 5.2): ``invalid_request`` 400,
``invalid_client`` 401, ``invalid_grant`` 400, ``unsupported_grant_type`` 400, and
``slow_down`` 429 with ``Retry-After`` after repeated failures (the code RFC 8628 registers
for "back off"). This is the one exception to citygrid's ``{"error": {"code", ...}}``
format: OAuth client libraries (requests-oauthlib, Authlib, Spring, .NET) parse exactly this
shape, and a department system should be able to use one off the shelf.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any
from urllib.parse import unquote_plus

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from citygrid.access import accounts
from citygrid.access.accounts import Outcome
from citygrid.access.deps import CurrentActor, client_address, request_settings
from citygrid.access.tokens import issue_token
from citygrid.kit.i18n import _
from citygrid.kit.web import SessionDep

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class TokenResponse(BaseModel):
    """A bearer token (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str = Field(default="Bearer", examples=["Bearer"])
    expires_in: int = Field(description="Seconds until the token expires", examples=[900])


class OAuthError(BaseModel):
    """An OAuth error (RFC 6749 section 5.2)."""

    error: str = Field(examples=["invalid_grant"])
    error_description: str


class Me(BaseModel):
    """Who the caller is, as the access gateway sees them."""

    name: str
    kind: str = Field(description="account or client")
    display_name: str | None
    role: str
    department: str | None
    scopes: list[str]


def _oauth_error(
    status: int, error: str, description: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={**NO_STORE, **(headers or {})},
    )


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _space, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return ("", "")
    client_id, _colon, secret = decoded.partition(":")
    # RFC 6749 2.3.1: both are form-encoded before being joined.
    return unquote_plus(client_id), unquote_plus(secret)


def _throttled(result: accounts.SignInResult) -> JSONResponse:
    seconds = result.retry_after or 1
    return _oauth_error(
        429,
        "slow_down",
        _("Too many failed attempts. Wait {seconds} seconds before trying again.").format(
            seconds=seconds
        ),
        {"Retry-After": str(seconds)},
    )


FormText = Annotated[str | None, Form(max_length=1024)]

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthError, "description": "invalid_request, invalid_grant, unsupported_grant"},
    401: {"model": OAuthError, "description": "invalid_client"},
    429: {"model": OAuthError, "description": "slow_down: too many failures, see Retry-After"},
}


@router.post("/token", response_model=TokenResponse, responses=ERROR_RESPONSES)
def token(
    request: Request,
    session: SessionDep,
    grant_type: FormText = None,
    client_id: FormText = None,
    client_secret: FormText = None,
    username: FormText = None,
    password: FormText = None,
    otp: FormText = None,
    scope: FormText = None,
) -> JSONResponse:
    """Exchange client credentials, or a user name + password (+ TOTP code), for a bearer
    token. Errors are OAuth-shaped: ``{"error", "error_description"}``."""
    settings = request_settings(request)
    address = client_address(request, settings)
    ttl = settings.access_token_ttl_seconds
    if not grant_type:
        return _oauth_error(400, "invalid_request", _("grant_type is required"))
    if grant_type == "client_credentials":
        basic = _basic_credentials(request)
        if basic is not None and (client_id or client_secret):
            return _oauth_error(
                400,
                "invalid_request",
                _("send the client credentials either in the body or with HTTP Basic, not both"),
            )
        cid, secret = basic if basic is not None else (client_id or "", client_secret or "")
        if not cid or not secret:
            return _oauth_error(
                401,
                "invalid_client",
                _("client_id and client_secret are required"),
                {"WWW-Authenticate": 'Basic realm="citygrid"'},
            )
        result = accounts.authenticate_client(
            session, settings, client_id=cid, client_secret=secret, address=address
        )
        if result.outcome is Outcome.THROTTLED:
            return _throttled(result)
        if not result.ok or result.subject_id is None:
            return _oauth_error(
                401,
                "invalid_client",
                _("unknown client, wrong secret, or the client has been revoked"),
                {"WWW-Authenticate": 'Basic realm="citygrid"'},
            )
        kind = "client"
    elif grant_type == "password":
        if not username or not password:
            return _oauth_error(400, "invalid_request", _("username and password are required"))
        result = accounts.sign_in(
            session, settings, username=username, password=password, otp=otp, address=address
        )
        if result.outcome is Outcome.THROTTLED:
            return _throttled(result)
        if result.outcome is Outcome.OTP_REQUIRED:
            return _oauth_error(
                400, "invalid_grant", _("this account needs a one-time code: send otp")
            )
        if result.outcome is Outcome.OTP_INVALID:
            return _oauth_error(
                400, "invalid_grant", _("the one-time code is wrong or has been used already")
            )
        if result.outcome is Outcome.OTP_NOT_SET_UP:
            return _oauth_error(
                400,
                "invalid_grant",
                _("this account needs a second factor that has not been set up"),
            )
        if not result.ok or result.subject_id is None:
            return _oauth_error(
                400,
                "invalid_grant",
                _("the user name or password is wrong, or the account may not sign in"),
            )
        kind = "account"
    else:
        return _oauth_error(
            400,
            "unsupported_grant_type",
            _("grant_type must be client_credentials or password"),
        )
    access_token = issue_token(
        settings.require_secret_key(),
        kind="client" if kind == "client" else "account",
        subject_id=result.subject_id,
        ttl_seconds=ttl,
    )
    body = TokenResponse(access_token=access_token, token_type="Bearer", expires_in=ttl)  # noqa: S106
    return JSONResponse(body.model_dump(), headers=NO_STORE)


@router.get("/me", response_model=Me)
def me(request: Request, actor: CurrentActor) -> Me:
    """The caller: name, kind, role, department and territorial scope."""
    caller = getattr(request.state, "caller", None)
    return Me(
        name=actor.name,
        kind=actor.kind,
        display_name=caller.display_name if caller is not None else None,
        role=actor.role,
        department=actor.department,
        scopes=list(actor.scopes),
    )
