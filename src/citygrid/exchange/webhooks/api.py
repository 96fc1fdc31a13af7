"""Webhook subscriptions JSON routes: register (with the callback's challenge), list, read,
renew, delete, the delivery log and replay. Thin: parse, call the service, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from citygrid.access.deps import CurrentActor
from citygrid.access.persons_api import commit_before_answering
from citygrid.exchange.webhooks import service
from citygrid.exchange.webhooks.models import SubscriptionState
from citygrid.exchange.webhooks.schemas import (
    DeliveryRead,
    RenewalRequest,
    ReplayAnswer,
    ReplayRequest,
    SubscriptionCreate,
    SubscriptionRead,
)
from citygrid.kit.settings import Settings
from citygrid.kit.web import SessionDep

router = APIRouter(prefix="/api/v1/exchange/subscriptions", tags=["exchange: webhooks"])

SubscriptionPath = Annotated[str, Path(max_length=24, description="The subscription's id")]


@router.post(
    "",
    status_code=201,
    response_model=SubscriptionRead,
    responses={
        403: {"description": "Not a department, or the topic's data is not visible to it"},
        422: {
            "description": "Bad topic, secret or callback URL; or the callback failed the "
            "challenge (code callback_verification_failed; the failed subscription is kept)"
        },
    },
)
def subscribe(
    request: Request, session: SessionDep, actor: CurrentActor, body: SubscriptionCreate
) -> JSONResponse:
    """Subscribe the caller's department to a topic. citygrid first GETs the callback with
    ``hub.mode=subscribe``, ``hub.topic``, ``hub.challenge`` and ``hub.lease_seconds``; the
    subscription is active only if the callback answers 2xx with the challenge as its body."""
    settings: Settings = request.app.state.settings
    # End what identifying the caller read: the challenge may take seconds, and on SQLite a
    # read snapshot held across it could not become the write that follows.
    commit_before_answering(session)
    subscription = service.subscribe(session, actor, data=body, settings=settings)
    read = service.subscription_read(subscription).model_dump(mode="json")
    commit_before_answering(session)
    if subscription.state is SubscriptionState.FAILED:
        error = service.verification_failed(subscription)
        return JSONResponse(error.to_dict(), status_code=error.status_code)
    return JSONResponse(
        read, status_code=201, headers={"Location": f"{router.prefix}/{read['id']}"}
    )


@router.get("", response_model=list[SubscriptionRead])
def list_subscriptions(session: SessionDep, actor: CurrentActor) -> list[SubscriptionRead]:
    """The subscriptions of the caller's department (every department's for an
    administrator), with their deliveries per state."""
    return service.list_subscriptions(session, actor)


@router.get("/{subscription}", response_model=SubscriptionRead)
def get_subscription(
    session: SessionDep, actor: CurrentActor, subscription: SubscriptionPath
) -> SubscriptionRead:
    """One subscription (404 for another department's)."""
    return service.get_subscription(session, actor, ref=subscription)


@router.post(
    "/{subscription}/renew",
    response_model=SubscriptionRead,
    responses={
        403: {"description": "Not the subscription's department (code not_the_owner)"},
        404: {"description": "No such subscription of the caller's department"},
        422: {
            "description": "lease_seconds out of bounds, or the callback failed the challenge "
            "(code callback_verification_failed; the subscription is left as it was)"
        },
    },
)
def renew(
    request: Request,
    session: SessionDep,
    actor: CurrentActor,
    subscription: SubscriptionPath,
    body: RenewalRequest | None = None,
) -> SubscriptionRead:
    """Renew the lease of one of the caller's department's subscriptions (WebSub): the
    callback is challenged again as at registration (``hub.mode=subscribe``, a new
    ``hub.challenge``, ``hub.lease_seconds``); when it echoes, the subscription is active
    until now + ``lease_seconds`` (default and most ``CITYGRID_WEBHOOK_LEASE_DAYS``, least
    3,600 s), even one that had expired or failed its first challenge."""
    settings: Settings = request.app.state.settings
    renewal = service.prepare_renewal(
        session, actor, ref=subscription, data=body, settings=settings
    )
    # End the read before the challenge (seconds, maybe): on SQLite a read snapshot held
    # across it could not become the write that follows.
    commit_before_answering(session)
    service.renew(session, actor, renewal=renewal, settings=settings)
    return service.get_subscription(session, actor, ref=subscription)


@router.delete("/{subscription}", status_code=204)
def delete_subscription(
    session: SessionDep, actor: CurrentActor, subscription: SubscriptionPath
) -> Response:
    """End a subscription; its delivery log is kept."""
    service.cancel(session, actor, ref=subscription)
    return Response(status_code=204)


@router.get("/{subscription}/deliveries", response_model=list[DeliveryRead])
def deliveries(
    session: SessionDep,
    actor: CurrentActor,
    subscription: SubscriptionPath,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[DeliveryRead]:
    """The delivery log, newest first: each delivery's state and attempts (status code,
    latency, error class), never its body."""
    return service.delivery_log(session, actor, ref=subscription, state=state, limit=limit)


@router.post("/{subscription}/replay", response_model=ReplayAnswer)
def replay(
    session: SessionDep, actor: CurrentActor, subscription: SubscriptionPath, body: ReplayRequest
) -> ReplayAnswer:
    """Send deliveries again: ``{"deliveries": [id, ...]}`` or ``{"state": "dead"}``."""
    return ReplayAnswer(replayed=service.replay(session, actor, ref=subscription, data=body))
