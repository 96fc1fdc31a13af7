"""Open311 GeoReport v2 routes under ``/open311/v2/``, each as ``.json`` and ``.xml``.

Thin: read the parameters as the client sent them, call the service, render the document.
Every refusal is answered in GeoReport's error list (``[{"code", "description"}]``, or
``<errors><error>...``) with 400, 403 or 404; unknown paths under ``/open311/v2/`` too.
Parameters are read from the query string and, for ``POST``, the form body (urlencoded or
multipart); ``locale`` (``zh_CN``, ``en``) overrides Accept-Language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import Response

from citygrid.access.deps import client_address, request_settings
from citygrid.cases.api import WriteSessionDep
from citygrid.cases.open311 import service
from citygrid.cases.open311.formats import FORMATS, error_document, render
from citygrid.kit import i18n
from citygrid.kit.errors import CitygridError
from citygrid.kit.web import SessionDep
from citygrid.territory.api import LocatorDep

PREFIX = "/open311/v2"

router = APIRouter(prefix=PREFIX, tags=["open311"])

#: Statuses of GeoReport's error list; other refusals of the domain are reported as 400.
_SPEC_STATUSES = frozenset({400, 403, 404})


def _status(error: CitygridError) -> int:
    if error.status_code in _SPEC_STATUSES:
        return error.status_code
    return 403 if error.status_code == 401 else 400


def error_response(format_: str, status_code: int, descriptions: list[str]) -> Response:
    """GeoReport's error list in the requested format (JSON for an unknown one)."""
    document = error_document(status_code, descriptions)
    return render(format_ if format_ in FORMATS else "json", "errors", document, status_code)


def _answer(format_: str, root: str, build: Callable[[], Any]) -> Response:
    if format_ not in FORMATS:
        return error_response("json", 404, [i18n._("format: use .json or .xml")])
    try:
        document = build()
    except CitygridError as error:
        return error_response(format_, _status(error), [error.message])
    return render(format_, root, document)


async def _parameters(request: Request) -> dict[str, list[str]]:
    """Every parameter with all its values: the query string, then the form body."""
    parameters: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        parameters.setdefault(key, []).append(value)
    if request.method == "POST":
        form = await request.form()
        for key, item in form.multi_items():
            if isinstance(item, str):
                parameters.setdefault(key, []).append(item)
    locale = parameters.get("locale")
    if locale and locale[0].strip():
        i18n.set_locale(i18n.negotiate_locale(locale[0].replace("_", "-"), None))
    return parameters


Parameters = Annotated[dict[str, list[str]], Depends(_parameters)]


def _first(parameters: dict[str, list[str]], name: str) -> str | None:
    values = parameters.get(name)
    return values[0].strip() if values else None


@router.get("/discovery.{format_}", summary="Service discovery")
def discovery(format_: str, request: Request, parameters: Parameters) -> Response:
    """Where this endpoint is, which specification and formats it serves, how to get a key."""
    url = str(request.base_url).rstrip("/") + PREFIX + "/"
    return _answer(format_, "discovery", lambda: service.discovery_document(url))


@router.get("/services.{format_}", summary="Services (the catalogue)")
def services(format_: str, parameters: Parameters) -> Response:
    """Every minor class of the catalogue as a service (``service_code`` = category code)."""
    return _answer(format_, "services", service.services_document)


@router.get("/services/{service_code}.{format_}", summary="A service's definition")
def service_definition(service_code: str, format_: str, parameters: Parameters) -> Response:
    """A service's attributes (404 for an unknown service_code)."""
    return _answer(
        format_, "service_definition", lambda: service.service_definition_document(service_code)
    )


@router.post("/requests.{format_}", summary="File a service request")
def post_request(
    format_: str,
    request: Request,
    parameters: Parameters,
    session: WriteSessionDep,
    locator: LocatorDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    """File a case (api_key; service_code; lat and long, or address_string; attributes)."""
    settings = request_settings(request)

    def build() -> Any:
        client = service.authenticate(
            session,
            api_key=_first(parameters, "api_key"),
            demo_mode=settings.demo_mode,
            request_id=getattr(request.state, "request_id", None),
            client_address=client_address(request, settings),
        )
        filed = service.submit_request(
            session, client, form=parameters, locator=locator, idempotency_key=idempotency_key
        )
        return service.filed_document(filed)

    return _answer(format_, "service_requests", build)


@router.get("/requests.{format_}", summary="Service requests")
def get_requests(format_: str, session: SessionDep, parameters: Parameters) -> Response:
    """Requests by id, or by service, status and reporting window (90 days at most)."""
    query = {name: _first(parameters, name) for name in parameters}
    return _answer(format_, "service_requests", lambda: service.find_requests(session, query=query))


@router.get("/requests/{service_request_id}.{format_}", summary="A service request")
def get_request(
    service_request_id: str, format_: str, session: SessionDep, parameters: Parameters
) -> Response:
    """One request, as a list of one (404 if there is none)."""
    return _answer(
        format_,
        "service_requests",
        lambda: service.get_request(session, service_request_id=service_request_id),
    )


@router.get("/tokens/{token}.{format_}", summary="The request a token became")
def get_token(token: str, format_: str, session: SessionDep, parameters: Parameters) -> Response:
    """The service_request_id of a token from ``POST requests``."""
    return _answer(
        format_, "service_requests", lambda: service.token_document(session, token=token)
    )


@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def unknown(path: str) -> Response:
    """Anything else under /open311/v2/: 404 in GeoReport's error list."""
    format_ = path.rsplit(".", 1)[-1] if "." in path else "json"
    return error_response(format_, 404, [i18n._("No Open311 resource has this path.")])
