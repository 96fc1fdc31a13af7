"""The webhook subscriptions page of department officers and administrators: subscriptions
and their state, a subscription's lease and delivery log, renewal of the lease by its
department and replay (POST forms with the CSRF token).

The page never shows a delivery's body (it may hold personal data): only its id, topic, the
subject's opaque reference, state and attempts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from citygrid.access.deps import CurrentActor
from citygrid.access.persons_api import commit_before_answering
from citygrid.exchange.catalogue import default_catalogue
from citygrid.exchange.webhooks import service
from citygrid.exchange.webhooks.models import DeliveryState
from citygrid.kit.errors import CitygridError
from citygrid.kit.i18n import localised
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from citygrid.kit.web import SessionDep, render

router = APIRouter(include_in_schema=False)

LOG_SIZE = 50
STATES = [state.value for state in DeliveryState]


def _departments() -> dict[str, str]:
    """Member departments' names in the current language, by slug."""
    return {
        member.slug: localised(member.name_zh, member.name_en)
        for member in default_catalogue().members
    }


def _expired(expires_at: datetime | None) -> bool:
    """Whether a lease has run out (SQLite hands back naive UTC datetimes)."""
    if expires_at is None:
        return False
    aware = expires_at.replace(tzinfo=UTC) if expires_at.tzinfo is None else expires_at
    return aware <= utcnow()


def _refused(request: Request, error: CitygridError) -> Response:
    return render(
        request,
        "error.html",
        status_code=error.status_code,
        error=error.to_dict()["error"],
        status=error.status_code,
        show_message=True,
    )


@router.get("/exchange/subscriptions", response_class=HTMLResponse)
def subscriptions_page(request: Request, session: SessionDep, actor: CurrentActor) -> Response:
    """The subscriptions of the officer's department (every one for an administrator)."""
    try:
        subscriptions = service.list_subscriptions(session, actor)
    except CitygridError as error:
        return _refused(request, error)
    return render(
        request,
        "webhooks/subscriptions.html",
        subscriptions=subscriptions,
        departments=_departments(),
        selected=None,
        deliveries=[],
        states=STATES,
        state_filter="",
        replayed=None,
        renewed=False,
        can_renew=False,
        expired=False,
    )


@router.get("/exchange/subscriptions/{subscription}", response_class=HTMLResponse)
def subscription_page(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    subscription: Annotated[str, Path(max_length=24)],
    state: Annotated[str | None, Query(max_length=16)] = None,
    replayed: Annotated[int | None, Query(ge=0)] = None,
    renewed: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> Response:
    """A subscription, its lease (with a renewal button for its department) and its
    delivery log, with replay buttons."""
    try:
        subscriptions = service.list_subscriptions(session, actor)
        selected = service.get_subscription(session, actor, ref=subscription)
        deliveries = service.delivery_log(
            session, actor, ref=subscription, state=state or None, limit=LOG_SIZE
        )
    except CitygridError as error:
        return _refused(request, error)
    return render(
        request,
        "webhooks/subscriptions.html",
        subscriptions=subscriptions,
        departments=_departments(),
        selected=selected,
        deliveries=deliveries,
        states=STATES,
        state_filter=state or "",
        replayed=replayed,
        renewed=bool(renewed),
        can_renew=bool(actor.department) and actor.department == selected.department,
        expired=_expired(selected.expires_at),
    )


@router.post("/exchange/subscriptions/{subscription}/replay", response_class=HTMLResponse)
def replay_form(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    subscription: Annotated[str, Path(max_length=24)],
    delivery: Annotated[str | None, Form(max_length=36)] = None,
    state: Annotated[str | None, Form(max_length=16)] = None,
) -> Response:
    """Replay one delivery (``delivery``) or every delivery in a state (``state=dead``)."""
    data = {"deliveries": [delivery]} if delivery else {"state": state or "dead"}
    try:
        count = service.replay(session, actor, ref=subscription, data=data)
    except CitygridError as error:
        return _refused(request, error)
    return RedirectResponse(
        f"/exchange/subscriptions/{subscription}?replayed={count}", status_code=303
    )


@router.post("/exchange/subscriptions/{subscription}/renew", response_class=HTMLResponse)
def renew_form(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    subscription: Annotated[str, Path(max_length=24)],
) -> Response:
    """Renew the subscription's lease for the longest lease (its department only): the
    callback is challenged again; a failed challenge is an error page and changes nothing."""
    settings: Settings = request.app.state.settings
    try:
        renewal = service.prepare_renewal(session, actor, ref=subscription, settings=settings)
        # End the read before the challenge (see the API's renew).
        commit_before_answering(session)
        service.renew(session, actor, renewal=renewal, settings=settings)
    except CitygridError as error:
        return _refused(request, error)
    return RedirectResponse(f"/exchange/subscriptions/{subscription}?renewed=1", status_code=303)
