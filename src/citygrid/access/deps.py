"""Who is calling: FastAPI dependencies, CSRF protection and the templates' view of the caller.

Use in routes::

    from citygrid.access.deps import CurrentActor, OptionalActor

    @router.get("/api/v1/things")
    def things(session: SessionDep, actor: CurrentActor) -> ...: ...

- ``CurrentActor``: the signed-in account (session cookie) or the API caller (``Authorization:
  Bearer``), as a ``citygrid.kit.actor.Actor``. Without one, a page request (``Accept:
  text/html`` and a path outside ``/api/``) is redirected (303) to ``/signin?next=<path>``;
  an API request gets 401 JSON with ``WWW-Authenticate: Bearer``.
- ``OptionalActor``: the same, or None (public pages).
- CSRF: every POST/PUT/PATCH/DELETE authenticated by the session cookie must carry the
  session's CSRF token, as the form field ``csrf_token`` (render it with ``{{ csrf_field() }}``
  inside the ``<form>``) or the header ``X-CSRF-Token`` (scripts: ``{{ csrf_token() }}``).
  The check runs in ``identify_request``, which the app runs for EVERY route (an
  app-level dependency in ``create_app``) and which ``CurrentActor``, ``OptionalActor`` and
  ``CsrfChecked`` depend on too: routes get it for free and need add nothing. A missing or
  wrong token answers 403 before the route runs, so nothing changes. Bearer-token calls are
  not checked (a browser never adds that header by itself); requests with no session are
  not checked either (there is nothing to ride on); ``/signin`` checks its own signed
  double-submit cookie; Open311 (``/open311/``) authenticates by its ``api_key`` alone and
  never reads the session, so it is not checked either.
- Templates: ``signed_in()`` is the caller (``.actor``, ``.display_name``, ``.role_label``)
  or None; ``csrf_field()`` and ``csrf_token()`` as above ('' when nobody is signed in, as
  such forms are not checked); ``role_label(role)`` names a role in the current locale.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

import jinja2
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlowPassword, OAuthFlows
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import OAuth2
from markupsafe import Markup
from sqlalchemy.orm import Session

from citygrid.access import accounts, sessions
from citygrid.kit.actor import Actor
from citygrid.kit.errors import CitygridError, Forbidden
from citygrid.kit.i18n import _
from citygrid.kit.settings import Settings
from citygrid.kit.web import SessionDep, templates, wants_html
from citygrid.territory.geojson import city_prefix

logger = logging.getLogger("citygrid.access")

SESSION_COOKIE = "citygrid_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# These check their own credentials and never act on the session cookie.
CSRF_EXEMPT_PATHS = frozenset({"/signin", "/api/v1/auth/token"})
# Open311 (GeoReport v2) authenticates each POST by its api_key; its routes never read the
# session's identity, so a cookie the browser adds lends them nothing to forge.
CSRF_EXEMPT_PREFIXES = ("/open311/",)
TOKEN_URL = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class NotAuthenticated(CitygridError):
    """No valid session or bearer token."""

    status_code = 401
    code = "not_authenticated"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is behind a request, as the web layer knows them."""

    actor: Actor
    display_name: str
    via: str  # "session" (cookie) or "bearer" (Authorization header)
    csrf_token: str | None = None  # the session's, for forms; None for bearer calls

    @property
    def role_label(self) -> str:
        """The role's name for people, in the current locale."""
        return accounts.role_label(self.actor.role)


def request_settings(request: Request) -> Settings:
    """The settings of the app serving this request."""
    settings: Settings = request.app.state.settings
    return settings


def client_address(request: Request, settings: Settings) -> str | None:
    """The caller's address; behind a trusted proxy, the one the proxy saw."""
    if settings.trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded:
            # Our own proxy appends the address it saw: the last entry is the one to believe.
            return forwarded.split(",")[-1].strip()[:64] or None
    return request.client.host if request.client else None


def is_https(request: Request, settings: Settings) -> bool:
    """True when the browser reached us over HTTPS (directly or through a trusted proxy)."""
    if request.url.scheme == "https":
        return True
    if settings.trust_proxy_headers:
        proto = request.headers.get("x-forwarded-proto", "")
        return proto.split(",")[0].strip().lower() == "https"
    return False


def _bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _space, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _grid_prefix(scope: str) -> str:
    """The prefix of every grid code under a scope: a city's own code (440100) is not the
    start of its districts' codes (440104...), its first four digits are. District codes
    never end in 00 (GB/T 2260), so only a city's code changes."""
    if len(scope) == 6 and scope.isdigit() and scope.endswith("00"):
        return city_prefix(scope)
    return scope


def _actor(request: Request, settings: Settings, *, scopes: Iterable[str], **fields: Any) -> Actor:
    return Actor(
        request_id=getattr(request.state, "request_id", None),
        client_address=client_address(request, settings),
        scopes=tuple(_grid_prefix(scope) for scope in scopes),
        **fields,
    )


async def _identify(request: Request, session: SessionDep) -> Caller | None:
    """Resolve the bearer token or the session cookie. A request with neither (the public map,
    the locator, static pages) costs no query and no hop through the thread pool."""
    if _bearer_token(request) is None and not request.cookies.get(SESSION_COOKIE):
        request.state.caller = None
        request.state.actor = None
        return None
    return await run_in_threadpool(_identify_with_database, request, session)


def _identify_with_database(request: Request, session: Session) -> Caller | None:
    """The credentials' account or client, from the database."""
    settings = request_settings(request)
    caller: Caller | None = None
    token = _bearer_token(request)
    if token is not None:
        identity = accounts.identity_for_token(session, settings, token=token)
        if identity is None:
            # A presented but bad token never falls back to the cookie.
            request.state.invalid_token = True
        else:
            actor = _actor(
                request,
                settings,
                name=identity.name,
                role=identity.role,
                department=identity.department,
                scopes=identity.scopes,
                kind=identity.kind,
                account_id=identity.subject_id if identity.kind == "account" else None,
            )
            caller = Caller(actor=actor, display_name=identity.display_name, via="bearer")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            found = sessions.resume_session(session, settings, token=cookie)
            if found is None:
                request.state.stale_session = True
            else:
                actor = _actor(
                    request,
                    settings,
                    name=found.username,
                    role=found.role,
                    department=found.department,
                    scopes=found.scopes,
                    kind="account",
                    account_id=found.account_id,
                )
                caller = Caller(
                    actor=actor,
                    display_name=found.display_name,
                    via="session",
                    csrf_token=found.csrf_token,
                )
    request.state.caller = caller
    request.state.actor = caller.actor if caller else None
    return caller


async def _sent_csrf_token(request: Request) -> str | None:
    sent = request.headers.get(CSRF_HEADER)
    if sent:
        return sent
    if request.headers.get("content-type", "").lower().startswith(FORM_TYPES):
        # FastAPI has parsed (and cached) the form already when the route declares fields.
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


async def identify_request(
    request: Request, caller: Annotated[Caller | None, Depends(_identify)]
) -> Caller | None:
    """Who is calling (or None), after the CSRF check of cookie-authenticated unsafe requests.

    ``create_app`` runs this for every route; it is cached per request.
    """
    if (
        caller is not None
        and caller.via == "session"
        and request.method in UNSAFE_METHODS
        and request.url.path not in CSRF_EXEMPT_PATHS
        and not request.url.path.startswith(CSRF_EXEMPT_PREFIXES)
        and not getattr(request.state, "csrf_checked", False)
    ):
        sent = await _sent_csrf_token(request)
        expected = caller.csrf_token or ""
        if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
            logger.warning(
                "CSRF token %s on %s %s (request %s)",
                "missing" if not sent else "wrong",
                request.method,
                request.url.path,
                getattr(request.state, "request_id", "-"),
            )
            raise Forbidden(
                _("The form's security token is missing or wrong. Reload the page and try again."),
                code="csrf_failed",
            )
        request.state.csrf_checked = True
    return caller


# Shown in the OpenAPI document (the "Authorize" button); the header is read by _identify.
oauth2_scheme = OAuth2(
    flows=OAuthFlows(
        clientCredentials=OAuthFlowClientCredentials(tokenUrl=TOKEN_URL),
        password=OAuthFlowPassword(tokenUrl=TOKEN_URL),
    ),
    scheme_name="citygrid",
    auto_error=False,
)


def current_actor(
    request: Request,
    caller: Annotated[Caller | None, Depends(identify_request)],
    _token: Annotated[str | None, Depends(oauth2_scheme)] = None,
) -> Actor:
    """The signed-in account or API client behind this request (401 / sign-in page when none)."""
    if caller is None:
        if getattr(request.state, "invalid_token", False):
            raise NotAuthenticated(_("The access token is invalid or has expired."))
        if getattr(request.state, "stale_session", False):
            raise NotAuthenticated(_("Your session has ended. Please sign in again."))
        raise NotAuthenticated(_("Sign in first."))
    return caller.actor


def optional_actor(caller: Annotated[Caller | None, Depends(identify_request)]) -> Actor | None:
    """The signed-in account or API client, or None on a public page."""
    return caller.actor if caller is not None else None


def csrf_checked(_caller: Annotated[Caller | None, Depends(identify_request)]) -> None:
    """Nothing but the CSRF check (already run for every route of ``create_app``)."""


CurrentActor = Annotated[Actor, Depends(current_actor)]
OptionalActor = Annotated[Actor | None, Depends(optional_actor)]
CsrfChecked = Annotated[None, Depends(csrf_checked)]


# ============================================================================ answers


def signin_redirect(request: Request) -> RedirectResponse:
    """303 to the sign-in page, coming back here (GET) or to the start (other methods)."""
    from citygrid.web.pages import local_path

    target = "/"
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = RedirectResponse(f"/signin?next={quote(local_path(target), safe='')}", 303)
    if request.cookies.get(SESSION_COOKIE):
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def _not_authenticated(request: Request, exc: Exception) -> Response:
    if wants_html(request):
        return signin_redirect(request)
    assert isinstance(exc, CitygridError)  # noqa: S101 - registered for NotAuthenticated only
    challenge = 'Bearer realm="citygrid"'
    if getattr(request.state, "invalid_token", False):
        challenge += ', error="invalid_token"'
    return JSONResponse(
        exc.to_dict(), status_code=exc.status_code, headers={"WWW-Authenticate": challenge}
    )


def install_authentication(app: FastAPI) -> None:
    """Answer ``NotAuthenticated`` with the sign-in page (pages) or a Bearer challenge (API)."""
    app.add_exception_handler(NotAuthenticated, _not_authenticated)


# ============================================================================ templates


def _request_of(context: Any) -> Request | None:
    request = context.get("request")
    return request if isinstance(request, Request) else None


@jinja2.pass_context
def signed_in(context: Any) -> Caller | None:
    """The caller of the page being rendered, or None."""
    request = _request_of(context)
    return getattr(request.state, "caller", None) if request is not None else None


@jinja2.pass_context
def csrf_token(context: Any) -> str:
    """The CSRF token for this page's forms and scripts ('' when nobody is signed in)."""
    request = _request_of(context)
    if request is None:
        return ""
    caller = getattr(request.state, "caller", None)
    return caller.csrf_token or "" if caller is not None else ""


@jinja2.pass_context
def csrf_field(context: Any, token: str | None = None) -> Markup:
    """The hidden ``csrf_token`` input every form must carry (put it inside the form).

    ``token`` overrides the session's (the sign-in form passes its double-submit token)."""
    token = token or csrf_token(context)
    if not token:
        return Markup("")
    return Markup('<input type="hidden" name="{}" value="{}">').format(CSRF_FIELD, token)


templates.env.globals["signed_in"] = signed_in
templates.env.globals["csrf_token"] = csrf_token
templates.env.globals["csrf_field"] = csrf_field
templates.env.globals["role_label"] = accounts.role_label
