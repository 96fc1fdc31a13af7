"""Sign-in and sign-out pages.

``GET /signin`` shows the form; ``POST /signin`` checks it. Before a session exists the
form is protected against login CSRF by a signed double-submit cookie: the cookie and the
hidden field carry the same signed, dated nonce. An account that needs a second factor is
asked for its TOTP code in a second step; between the two steps a signed, five-minute
cookie remembers whose password was right (the password itself is never sent back).
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citygrid.access import accounts, sessions
from citygrid.access.accounts import Outcome, SignInResult
from citygrid.access.deps import (
    SESSION_COOKIE,
    OptionalActor,
    client_address,
    is_https,
    request_settings,
)
from citygrid.access.tokens import sign, signature_matches
from citygrid.kit.i18n import _
from citygrid.kit.settings import Settings
from citygrid.kit.web import SessionDep, render

router = APIRouter(include_in_schema=False)

SIGNIN_CSRF_COOKIE = "citygrid_signin_csrf"
SIGNIN_CSRF_MAX_AGE = 2 * 60 * 60
PENDING_COOKIE = "citygrid_signin_2fa"
PENDING_MAX_AGE = 5 * 60
COOKIE_PATH = "/signin"


def _local(target: str | None) -> str:
    from citygrid.web.pages import local_path

    path = local_path(target)
    # Never come back to the sign-in form itself after signing in.
    return "/" if path.split("?", 1)[0] in ("/signin", "/signout") else path


# ----------------------------------------------------------------------------- signed values


def _new_form_token(settings: Settings) -> str:
    body = f"{secrets.token_urlsafe(18)}.{int(time.time())}"
    return f"{body}.{sign(settings.require_secret_key(), 'signin-csrf', body)}"


def _form_token_valid(settings: Settings, token: str | None) -> bool:
    if not token or len(token) > 200:
        return False
    body, _sep, signature = token.rpartition(".")
    if not body or not signature_matches(
        settings.require_secret_key(), "signin-csrf", body, signature
    ):
        return False
    try:
        issued = int(body.rsplit(".", 1)[1])
    except (IndexError, ValueError):
        return False
    return 0 <= time.time() - issued < SIGNIN_CSRF_MAX_AGE


def _pending_value(settings: Settings, account_id: int) -> str:
    body = f"{account_id}.{int(time.time()) + PENDING_MAX_AGE}.{secrets.token_urlsafe(12)}"
    return f"{body}.{sign(settings.require_secret_key(), 'signin-2fa', body)}"


def _pending_account(settings: Settings, value: str | None) -> int | None:
    if not value or len(value) > 200:
        return None
    body, _sep, signature = value.rpartition(".")
    if not body or not signature_matches(
        settings.require_secret_key(), "signin-2fa", body, signature
    ):
        return None
    parts = body.split(".")
    try:
        account_id, expires = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None
    return account_id if expires > time.time() else None


def _set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None, path: str
) -> None:
    settings = request_settings(request)
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite="lax",
        secure=is_https(request, settings),
    )


# ----------------------------------------------------------------------------- pages


def _form(
    request: Request,
    *,
    next_path: str,
    status_code: int = 200,
    error: str | None = None,
    step: str = "password",
    username: str = "",
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """The sign-in form with a valid double-submit token (reused from the cookie if good)."""
    settings = request_settings(request)
    token = request.cookies.get(SIGNIN_CSRF_COOKIE)
    if not _form_token_valid(settings, token):
        token = _new_form_token(settings)
    assert token is not None  # noqa: S101 - for the type checker
    response = render(
        request,
        "access/signin.html",
        status_code=status_code,
        signin_token=token,
        next_path=next_path,
        error=error,
        step=step,
        username=username,
    )
    _set_cookie(
        request, response, SIGNIN_CSRF_COOKIE, token, max_age=SIGNIN_CSRF_MAX_AGE, path=COOKIE_PATH
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_page(
    request: Request,
    actor: OptionalActor,
    next_path: Annotated[str, Query(alias="next", max_length=2000)] = "/",
) -> Response:
    """The sign-in form (or straight on, when already signed in)."""
    target = _local(next_path)
    if actor is not None and actor.kind == "account":
        return RedirectResponse(target, status_code=303)
    response = _form(request, next_path=target)
    if request.cookies.get(PENDING_COOKIE):
        # Coming back to the form starts over: forget a half-done second step.
        response.delete_cookie(PENDING_COOKIE, path=COOKIE_PATH)
    return response


def _signed_in(request: Request, session: SessionDep, account_id: int, target: str) -> Response:
    settings = request_settings(request)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        # A new session on every sign-in: a planted cookie never becomes a signed-in one.
        sessions.end_session(session, token=old)
    token = sessions.start_session(
        session,
        settings,
        account_id=account_id,
        client_address=client_address(request, settings),
    )
    response = RedirectResponse(target, status_code=303)
    # No Max-Age: the cookie goes with the browser; the server ends the session anyway.
    _set_cookie(request, response, SESSION_COOKIE, token, max_age=None, path="/")
    if request.cookies.get(PENDING_COOKIE):
        response.delete_cookie(PENDING_COOKIE, path=COOKIE_PATH)
    return response


@router.post("/signin", response_class=HTMLResponse)
def signin_submit(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=200)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    otp: Annotated[str, Form(max_length=20)] = "",
    next_path: Annotated[str, Form(alias="next", max_length=2000)] = "/",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Check the form: user name and password, then the TOTP code where one is needed."""
    settings = request_settings(request)
    target = _local(next_path)
    cookie_token = request.cookies.get(SIGNIN_CSRF_COOKIE) or ""
    if not (
        csrf_token
        and secrets.compare_digest(csrf_token.encode(), cookie_token.encode())
        and _form_token_valid(settings, csrf_token)
    ):
        return _form(
            request,
            next_path=target,
            status_code=403,
            error=_("The sign-in form had expired or did not come from this site. Try again."),
        )
    address = client_address(request, settings)
    pending = _pending_account(settings, request.cookies.get(PENDING_COOKIE))
    result: SignInResult
    second_step = pending is not None and bool(otp) and not password
    if pending is not None and second_step:
        result = accounts.second_factor(
            session, settings, account_id=pending, otp=otp, address=address
        )
    else:
        result = accounts.sign_in(
            session,
            settings,
            username=username,
            password=password,
            otp=otp or None,
            address=address,
        )
    if result.outcome is Outcome.OK and result.subject_id is not None:
        return _signed_in(request, session, result.subject_id, target)
    if result.outcome is Outcome.THROTTLED:
        seconds = result.retry_after or 1
        return _form(
            request,
            next_path=target,
            status_code=429,
            step="otp" if second_step else "password",
            username=username,
            error=_("Too many failed attempts. Wait {seconds} seconds before trying again.").format(
                seconds=seconds
            ),
            headers={"Retry-After": str(seconds)},
        )
    wrong_code = _("The code is wrong or has been used already. Enter the current code.")
    if result.outcome is Outcome.OTP_REQUIRED or (
        result.outcome is Outcome.OTP_INVALID and second_step
    ):
        response = _form(
            request,
            next_path=target,
            status_code=200 if result.outcome is Outcome.OTP_REQUIRED else 401,
            step="otp",
            error=wrong_code if result.outcome is Outcome.OTP_INVALID else None,
        )
        if result.subject_id is not None:
            _set_cookie(
                request,
                response,
                PENDING_COOKIE,
                _pending_value(settings, result.subject_id),
                max_age=PENDING_MAX_AGE,
                path=COOKIE_PATH,
            )
        return response
    if result.outcome is Outcome.OTP_INVALID:
        # User name, password and code sent together: ask for all three again.
        return _form(
            request, next_path=target, status_code=401, username=username, error=wrong_code
        )
    if result.outcome is Outcome.OTP_NOT_SET_UP:
        return _form(
            request,
            next_path=target,
            status_code=403,
            error=_(
                "This account needs a second factor that has not been set up. Ask an administrator."
            ),
        )
    return _form(
        request,
        next_path=target,
        status_code=401,
        username=username,
        error=_("The user name or password is wrong, or the account may not sign in."),
    )


@router.post("/signout")
def signout(request: Request, session: SessionDep) -> RedirectResponse:
    """End the session (the layout's sign-out button posts here with its CSRF token)."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        sessions.end_session(session, token=token)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
