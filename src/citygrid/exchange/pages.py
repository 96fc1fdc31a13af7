"""Exchange pages: the data catalogue and the sharing scoreboard. Both show the catalogue
and aggregate counts only (no personal data), to anyone, like the catalogue's API."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from citygrid.exchange import scoreboard as scoreboard_service
from citygrid.exchange import service
from citygrid.kit.i18n import _
from citygrid.kit.web import SessionDep, render

router = APIRouter(include_in_schema=False)


def classification_labels() -> dict[str, str]:
    """The classifications' names in the current language."""
    return {
        "open": _("Open to the public"),
        "shared": _("Shared without conditions"),
        "conditional": _("Shared on conditions"),
        "confidential": _("Not shared"),
    }


def frequency_labels() -> dict[str, str]:
    """The promised update frequencies' names in the current language."""
    return {
        "daily": _("Daily"),
        "weekly": _("Weekly"),
        "monthly": _("Monthly"),
        "quarterly": _("Quarterly"),
    }


def lag_text(seconds: float | None) -> str:
    """A lag in the largest sensible unit."""
    if seconds is None:
        return "—"
    if seconds < 120:
        return _("%(n).0f s") % {"n": seconds}
    if seconds < 7200:
        return _("%(n).0f min") % {"n": seconds / 60}
    if seconds < 172800:
        return _("%(n).1f h") % {"n": seconds / 3600}
    return _("%(n).1f days") % {"n": seconds / 86400}


def when(moment: datetime | None) -> str:
    """A time as the pages show it (UTC)."""
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M")


@router.get("/exchange/catalogue", response_class=HTMLResponse)
def catalogue_page(request: Request, session: SessionDep) -> HTMLResponse:
    """The data catalogue: datasets (owner, fields and classes, classification, promised
    frequency, last published), life event types, and the member departments."""
    catalogue = service.catalogue_read(session)
    return render(
        request,
        "exchange/catalogue.html",
        catalogue=catalogue,
        owners={member.slug: member.name for member in catalogue.members},
        last_published=service.last_published(session),
        classifications=classification_labels(),
        frequencies=frequency_labels(),
        when=when,
    )


@router.get("/exchange/scoreboard", response_class=HTMLResponse)
def scoreboard_page(request: Request, session: SessionDep) -> HTMLResponse:
    """The sharing scoreboard, departments behind their promise first."""
    board = scoreboard_service.scoreboard(session)
    return render(
        request,
        "exchange/scoreboard.html",
        board=board,
        frequencies=frequency_labels(),
        lag_text=lag_text,
        when=when,
    )
