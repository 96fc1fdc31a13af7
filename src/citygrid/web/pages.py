"""Pages of the web shell (map, grid, language switch) and the health check."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from citygrid.kit import i18n
from citygrid.kit.errors import NotFound
from citygrid.kit.i18n import _
from citygrid.kit.web import LOCALE_COOKIE, SessionDep, render
from citygrid.web import service

router = APIRouter()

# A year: the choice of language is the user's until they change it.
LOCALE_COOKIE_MAX_AGE = 365 * 24 * 60 * 60


@router.get("/healthz", tags=["health"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def map_labels() -> dict[str, str]:
    """The map script's words in the current locale (it has no catalogue of its own)."""
    return {
        "code": _("Code"),
        "buildings": _("Buildings"),
        "housing_units": _("Housing units"),
        "households": _("Households"),
        "residents": _("Residents"),
        "components": _("Components"),
        "open": _("Open the grid page"),
        "loading": _("Loading the map…"),
        "failed": _("The map data could not be loaded."),
        "empty": _("There are no grids to show."),
    }


def count_rows() -> list[tuple[str, str]]:
    """The counts a grid page shows, in order, with their labels."""
    return [
        ("buildings", _("Buildings")),
        ("housing_units", _("Housing units")),
        ("households", _("Households")),
        ("residents", _("Residents")),
        ("components", _("Components")),
    ]


def local_path(target: str | None) -> str:
    """``target`` when it is a path on this site, else ``/``: no open redirects."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    # Browsers read "\" as "/" and drop tabs and newlines: "/\evil" is "//evil".
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


@router.get("/lang/{locale}", include_in_schema=False)
def switch_language(
    request: Request,
    locale: str,
    next_path: Annotated[str, Query(alias="next")] = "/",
) -> RedirectResponse:
    """Remember the chosen language in a cookie and go back to the page (no JavaScript)."""
    if locale not in i18n.LOCALES:
        raise NotFound(_("This language is not available."))
    response = RedirectResponse(local_path(next_path), status_code=303)
    response.set_cookie(
        LOCALE_COOKIE,
        locale,
        max_age=LOCALE_COOKIE_MAX_AGE,
        path="/",
        samesite="lax",
        httponly=True,
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
@router.get("/map", response_class=HTMLResponse, include_in_schema=False)
def map_page(
    request: Request,
    session: SessionDep,
    street: Annotated[str | None, Query(max_length=15)] = None,
) -> HTMLResponse:
    """The map of the district with the list of its streets (``street`` opened)."""
    overview = service.map_overview(session)
    return render(
        request,
        "web/map.html",
        district=overview.district,
        district_code=overview.district_code,
        streets=overview.streets,
        open_street=street,
        map_labels=map_labels(),
        tile_url=request.app.state.settings.map_tile_url,
    )


@router.get("/grids/{code}", response_class=HTMLResponse, include_in_schema=False)
def grid_page(request: Request, session: SessionDep, code: str) -> HTMLResponse:
    """One grid: its place in the territory, its counts and its map."""
    page = service.grid_page(session, code=code)
    return render(
        request,
        "web/grid.html",
        summary=page.summary,
        ancestors=page.ancestors,
        counts=page.counts,
        count_rows=count_rows(),
        component_groups=page.component_groups,
        map_labels=map_labels(),
        tile_url=request.app.state.settings.map_tile_url,
    )
