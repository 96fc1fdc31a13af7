"""The web layer's shared parts: templates, locale, error rendering, security headers."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any

import jinja2
from babel.numbers import format_decimal
from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from citygrid import __version__
from citygrid.kit import i18n
from citygrid.kit.errors import CitygridError

logger = logging.getLogger("citygrid.web")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
LOCALE_COOKIE = "citygrid_lang"

templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(WEB_DIR / "templates")),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
    )
)
templates.env.install_gettext_callables(  # type: ignore[attr-defined]
    i18n.gettext_, i18n.ngettext_, newstyle=True
)
templates.env.globals["get_locale"] = i18n.get_locale
templates.env.globals["LOCALES"] = i18n.LOCALES
templates.env.globals["version"] = __version__
templates.env.globals["localised"] = i18n.localised


def format_number(value: int | float) -> str:
    """A number with the current locale's digit grouping (``12,345``)."""
    return format_decimal(value, locale=i18n.get_locale())


templates.env.filters["number"] = format_number


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request: the request commits or rolls back, services only flush.

    Async so that opening the session costs no hop through the thread pool (a session does no
    I/O until it is used); the commit or rollback goes to the pool only when a transaction was
    begun, so a request that never touched the database pays nothing.
    """
    factory = request.app.state.session_factory
    session: Session = factory()
    try:
        yield session
        if session.in_transaction():
            await run_in_threadpool(session.commit)
    except BaseException:
        if session.in_transaction():
            await run_in_threadpool(session.rollback)
        raise
    finally:
        session.close()


# scope="function": commit before the response is sent. By default FastAPI runs the code
# after `yield` once the response is out, so a client could read 201 for a write that then
# failed to commit, or not find it on its next request.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def wants_html(request: Request) -> bool:
    """True for page routes; the API and Open311 always answer JSON (or XML)."""
    path = request.url.path
    if path.startswith(("/api/", "/open311/", "/healthz")):
        return False
    return "text/html" in request.headers.get("accept", "text/html")


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a page with the layout's common context."""
    context.setdefault("settings", request.app.state.settings)
    return templates.TemplateResponse(request, template, context, status_code=status_code)


def _error_response(request: Request, status: int, body: dict[str, Any]) -> Response:
    if wants_html(request):
        error = body["error"]
        # The bare HTTP phrase ("Not Found") says less than the page's translated title.
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        generic = {phrase, "internal error", "error"}
        return render(
            request,
            "error.html",
            status_code=status,
            error=error,
            status=status,
            show_message=error.get("message") not in generic,
        )
    return JSONResponse(body, status_code=status)


def _validation_details(exc: RequestValidationError) -> list[dict[str, str]]:
    details = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        # Never echo the rejected value back: it may be personal data.
        details.append({"field": ".".join(location) or "request", "reason": error.get("msg", "")})
    return details


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as ``{"error": {"code", "message", "details"}}`` (or a page)."""

    @app.exception_handler(CitygridError)
    async def _domain_error(request: Request, exc: CitygridError) -> Response:
        return _error_response(request, exc.status_code, exc.to_dict())

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = _validation_details(exc)
        message = "; ".join(f"{d['field']}: {d['reason']}" for d in details)
        body = {"error": {"code": "validation_failed", "message": message, "details": details}}
        return _error_response(request, 422, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = str(exc.detail) if exc.detail else "error"
        body = {"error": {"code": code, "message": message, "details": None}}
        return _error_response(request, exc.status_code, body)

    @app.exception_handler(IntegrityError)
    async def _integrity_error(request: Request, exc: IntegrityError) -> Response:
        # Two requests raced past a service's check; the database's constraint decided.
        # The driver's message names values (personal data): never echo it.
        message = i18n.gettext_("the record conflicts with one that already exists")
        body = {"error": {"code": "conflict", "message": message, "details": None}}
        return _error_response(request, 409, body)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        # Log the type and the request id only: the exception text may hold personal data.
        logger.error(
            "unhandled %s on %s (request %s)",
            type(exc).__name__,
            request.url.path,
            getattr(request.state, "request_id", "-"),
        )
        body = {"error": {"code": "internal", "message": "internal error", "details": None}}
        return _error_response(request, 500, body)


CACHEABLE_PREFIXES = ("/static/", "/vendor/")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: blob: {tiles}; style-src 'self'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)


class _PerRequest:
    """Pure ASGI middleware (no extra task per request, unlike ``@app.middleware``): a request
    id, the locale, and the security headers on every answer."""

    def __init__(self, app: ASGIApp, csp: str) -> None:
        self.app = app
        self.csp = csp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_headers = Headers(scope=scope)
        request_id = request_headers.get("x-request-id") or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        cookies = cookie_parser(request_headers.get("cookie", ""))
        locale = i18n.negotiate_locale(
            request_headers.get("accept-language"), cookies.get(LOCALE_COOKIE)
        )
        i18n.set_locale(locale)
        cacheable = scope["path"].startswith(CACHEABLE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Request-ID", request_id)
                headers.setdefault("Content-Security-Policy", self.csp)
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "same-origin")
                if not cacheable:
                    # Pages and API answers may hold personal data: no copy in any cache.
                    headers.setdefault("Cache-Control", "no-store")
                if "text/html" in headers.get("content-type", ""):
                    headers.setdefault("Content-Language", locale.replace("_", "-"))
                    # Pages differ by language: caches must key on what chose it.
                    headers.setdefault("Vary", "Accept-Language, Cookie")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_middleware(app: FastAPI) -> None:
    """Locale per request, a request id, and security headers on every answer."""
    tile_url = app.state.settings.map_tile_url
    tiles = ""
    if tile_url:
        scheme, _, rest = tile_url.partition("://")
        tiles = f"{scheme}://{rest.split('/', 1)[0].replace('{s}', '*')}"
    csp = CONTENT_SECURITY_POLICY.format(tiles=tiles).replace("  ", " ")
    app.add_middleware(_PerRequest, csp=csp)
