"""The rules of the webhooks: who may subscribe to what, the callback's verification, the
fan-out of outbox entries into deliveries, the delivery log and replay.

A department's system (an API client with a department) manages its department's
subscriptions; an administrator sees and replays every department's. Anyone else's
subscription is "not found". See docs/exchange.md, "Webhooks".
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from citygrid.access import gateway
from citygrid.exchange import sources
from citygrid.exchange.catalogue import Catalogue, default_catalogue
from citygrid.exchange.outbox import ConsumerRegistry, Message
from citygrid.exchange.webhooks import payload, repository
from citygrid.exchange.webhooks.delivery import verify_callback
from citygrid.exchange.webhooks.models import (
    DeliveryState,
    Subscription,
    SubscriptionState,
    WebhookDelivery,
)
from citygrid.exchange.webhooks.schemas import (
    MIN_LEASE_SECONDS,
    AttemptRead,
    DeliveryRead,
    RenewalRequest,
    ReplayRequest,
    SubscriptionCreate,
    SubscriptionRead,
)
from citygrid.exchange.webhooks.security import check_callback, encrypt_secret
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Forbidden, NotFound, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings
from citygrid.registry.schemas import parse

ALL_TOPICS = "*"
CONSUMER = "webhooks"
LIFE_EVENT_PREFIX = "life_event."
DATASET_PREFIX = "dataset."
REPLAYABLE = (DeliveryState.DEAD, DeliveryState.DELIVERED)
#: The role a department's system (its API client) acts in.
CLIENT_ROLE = "department_officer"
#: The purpose a subscriber is told for (as the reactions' "told" entries): statutory.
NOTIFY_PURPOSE = "life-event-notification"


# ============================================================================ who


def _is_admin(actor: Actor) -> bool:
    return actor.role == "admin"


def _visible_department(actor: Actor) -> str | None:
    """The department whose subscriptions the actor sees (None: every one, administrators)."""
    if _is_admin(actor):
        return None
    if actor.department:
        return actor.department
    raise Forbidden(
        _("Only a member department or an administrator may manage webhook subscriptions."),
        code="not_a_department",
    )


def _subscription(session: Session, actor: Actor, ref: str) -> Subscription:
    department = _visible_department(actor)
    found = repository.subscription_by_ref(session, ref=ref) if len(ref) <= 24 else None
    if found is None or (department is not None and found.department != department):
        raise NotFound(_("No such subscription."))
    return found


# ============================================================================ topics


def topics(catalogue: Catalogue | None = None) -> list[str]:
    """Every topic one may subscribe to: the life event types, the datasets, and ``*``."""
    catalogue = catalogue or default_catalogue()
    return [*catalogue.events, *catalogue.datasets, ALL_TOPICS]


def public_topic(outbox_topic: str) -> str:
    """The subscribers' name of an outbox topic (``life_event.death`` -> ``death``)."""
    for prefix in (LIFE_EVENT_PREFIX, DATASET_PREFIX):
        if outbox_topic.startswith(prefix):
            return outbox_topic[len(prefix) :]
    return outbox_topic


def _check_topic(topic: str, actor: Actor) -> None:
    catalogue = default_catalogue()
    if NOTIFY_PURPOSE not in {purpose.code for purpose in gateway.allowed_purposes(actor)}:
        raise Forbidden(
            _("Your department may not be told of changes (purpose %(purpose)s).")
            % {"purpose": NOTIFY_PURPOSE},
            code="purpose_not_allowed",
            details={"purpose": NOTIFY_PURPOSE},
        )
    if topic == ALL_TOPICS:
        return
    dataset = catalogue.dataset(topic)
    if dataset is None and catalogue.event_type(topic) is None:
        raise ValidationFailed.one(
            "topic", _("unknown topic: name a life event type, a dataset, or *")
        )
    gates = payload.dataset_gates(dataset) if dataset is not None else (payload.event_gate(topic),)
    if not gateway.may_be_told(actor, purpose=NOTIFY_PURPOSE, fields=gates):
        raise Forbidden(
            _("Your department may not see the data of the topic %(topic)s.") % {"topic": topic},
            code="topic_not_granted",
            details={"topic": topic},
        )


# ============================================================================ subscriptions


def subscription_read(
    subscription: Subscription, counts: Mapping[str, int] | None = None
) -> SubscriptionRead:
    """A subscription as the API shows it."""
    return SubscriptionRead(
        id=subscription.ref,
        department=subscription.department,
        topic=subscription.topic,
        callback_url=subscription.callback_url,
        state=str(subscription.state),
        created_by=subscription.created_by,
        created_at=subscription.created_at,
        verified_at=subscription.verified_at,
        expires_at=subscription.expires_at,
        failure_reason=subscription.failure_reason,
        deliveries=dict(counts or {}),
    )


def subscribe(
    session: Session,
    actor: Actor,
    *,
    data: SubscriptionCreate | Mapping[str, Any],
    settings: Settings,
) -> Subscription:
    """Register a subscription of the actor's department: the topic must be known and
    visible to the department, the callback URL safe to call (422 naming the field); the
    callback is then challenged (WebSub's verification of intent). The subscription is
    ``active`` when it echoed the challenge, ``failed`` (with the reason) when not."""
    if not actor.department:
        raise Forbidden(
            _("Only a member department's system may subscribe."), code="not_a_department"
        )
    request = parse(SubscriptionCreate, data)
    topic = request.topic.strip()
    _check_topic(topic, actor)
    check_callback(request.callback_url, allow_private=settings.webhook_private_callbacks_allowed)
    lease_seconds = int(timedelta(days=settings.webhook_lease_days).total_seconds())
    result = verify_callback(
        request.callback_url, topic=topic, lease_seconds=lease_seconds, settings=settings
    )
    now = utcnow()
    return repository.add_subscription(
        session,
        {
            "ref": "whs_" + secrets.token_urlsafe(12),
            "department": actor.department,
            "created_by": actor.name[:100],
            "scopes": [scope for scope in actor.scopes if scope.isascii() and scope.isdigit()],
            "topic": topic,
            "callback_url": request.callback_url,
            "secret_encrypted": encrypt_secret(
                request.secret, secret_key=settings.require_secret_key()
            ),
            "state": SubscriptionState.ACTIVE if result.ok else SubscriptionState.FAILED,
            "lease_seconds": lease_seconds,
            "verified_at": now if result.ok else None,
            "expires_at": now + timedelta(seconds=lease_seconds) if result.ok else None,
            "failure_reason": result.reason,
        },
    )


def verification_failed(subscription: Subscription) -> ValidationFailed:
    """The error answering a subscription whose callback failed the challenge."""
    return _challenge_failed(subscription.ref, subscription.failure_reason)


def _challenge_failed(ref: str, failure: str | None) -> ValidationFailed:
    reason = _("the callback did not echo the challenge (%(reason)s)") % {"reason": failure}
    error = ValidationFailed.one("callback_url", reason)
    error.code = "callback_verification_failed"
    error.details[0]["subscription"] = ref
    return error


def list_subscriptions(session: Session, actor: Actor) -> list[SubscriptionRead]:
    """The subscriptions the actor may see (its department's; every one for administrators),
    with their deliveries per state, newest first."""
    found = repository.list_subscriptions(session, department=_visible_department(actor))
    counts = repository.delivery_counts(session, subscription_ids=[s.id for s in found])
    return [subscription_read(s, counts.get(s.id)) for s in found]


def get_subscription(session: Session, actor: Actor, *, ref: str) -> SubscriptionRead:
    """One subscription the actor may see; 404 otherwise."""
    subscription = _subscription(session, actor, ref)
    if subscription.state is SubscriptionState.CANCELLED:
        raise NotFound(_("No such subscription."))
    counts = repository.delivery_counts(session, subscription_ids=[subscription.id])
    return subscription_read(subscription, counts.get(subscription.id))


def cancel(session: Session, actor: Actor, *, ref: str) -> None:
    """End a subscription: nothing more is delivered to it (its log is kept)."""
    subscription = _subscription(session, actor, ref)
    if subscription.state is SubscriptionState.CANCELLED:
        raise NotFound(_("No such subscription."))
    subscription.state = SubscriptionState.CANCELLED
    subscription.cancelled_at = utcnow()
    session.flush()


# ============================================================================ renewal


@dataclass(frozen=True, slots=True)
class Renewal:
    """A renewal that passed its checks, ready for the callback's challenge."""

    ref: str
    topic: str
    callback_url: str
    lease_seconds: int


def _owner_department(actor: Actor) -> str:
    """The actor's department; an administrator without one may not act for one (403)."""
    if not actor.department:
        raise Forbidden(
            _("Only the department that registered a subscription may renew it."),
            code="not_the_owner",
        )
    return actor.department


def _owned(session: Session, actor: Actor, ref: str) -> Subscription:
    """A subscription of the actor's own department, not cancelled: another department's is
    "not found"; an administrator without a department may not act for one (403)."""
    _owner_department(actor)
    subscription = _subscription(session, actor, ref)
    if (
        subscription.department != actor.department
        or subscription.state is SubscriptionState.CANCELLED
    ):
        raise NotFound(_("No such subscription."))
    return subscription


def _lease_seconds(requested: int | None, settings: Settings) -> int:
    longest = int(timedelta(days=settings.webhook_lease_days).total_seconds())
    if requested is None:
        return longest
    if not MIN_LEASE_SECONDS <= requested <= longest:
        raise ValidationFailed.one(
            "lease_seconds",
            _("must be between %(least)d and %(most)d seconds")
            % {"least": MIN_LEASE_SECONDS, "most": longest},
        )
    return requested


def prepare_renewal(
    session: Session,
    actor: Actor,
    *,
    ref: str,
    data: RenewalRequest | Mapping[str, Any] | None = None,
    settings: Settings,
) -> Renewal:
    """Check a renewal of one of the actor's department's subscriptions (WebSub's lease):
    the lease asked for (``lease_seconds``, 3,600 s up to ``CITYGRID_WEBHOOK_LEASE_DAYS``,
    the default), the topic still visible to the department and the callback still safe to
    call, as at registration. Reads only: the challenge (``renew``) comes next."""
    subscription = _owned(session, actor, ref)
    request = parse(RenewalRequest, data if data is not None else {})
    lease_seconds = _lease_seconds(request.lease_seconds, settings)
    _check_topic(subscription.topic, actor)
    check_callback(
        subscription.callback_url, allow_private=settings.webhook_private_callbacks_allowed
    )
    return Renewal(
        ref=subscription.ref,
        topic=subscription.topic,
        callback_url=subscription.callback_url,
        lease_seconds=lease_seconds,
    )


def renew(session: Session, actor: Actor, *, renewal: Renewal, settings: Settings) -> Subscription:
    """Challenge the callback as at registration; when it echoes, the subscription is
    ``active`` for the new lease from now (a ``failed`` or expired one too). When it does
    not, nothing changes: 422 ``callback_verification_failed`` naming ``callback_url``."""
    result = verify_callback(
        renewal.callback_url,
        topic=renewal.topic,
        lease_seconds=renewal.lease_seconds,
        settings=settings,
    )
    if not result.ok:
        # Read again after the challenge: it may have been deleted meanwhile (404 then).
        raise _challenge_failed(_owned(session, actor, renewal.ref).ref, result.reason)
    # The write first, then the read (it may have been deleted meanwhile): on SQLite a read
    # first could not become the write once another writer had committed.
    now = utcnow()
    renewed = repository.renew_lease(
        session,
        ref=renewal.ref,
        department=_owner_department(actor),
        lease_seconds=renewal.lease_seconds,
        verified_at=now,
        expires_at=now + timedelta(seconds=renewal.lease_seconds),
    )
    if not renewed:
        raise NotFound(_("No such subscription."))
    return _owned(session, actor, renewal.ref)


# ============================================================================ the log, replay


def _delivery_read(delivery: WebhookDelivery, attempts: Sequence[Any]) -> DeliveryRead:
    return DeliveryRead(
        id=delivery.uid,
        topic=delivery.topic,
        subject=delivery.subject_ref,
        state=str(delivery.state),
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        available_at=delivery.available_at,
        delivered_at=delivery.delivered_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        log=[
            AttemptRead(
                attempt=a.attempt,
                at=a.attempted_at,
                status_code=a.status_code,
                latency_ms=a.latency_ms,
                error=a.error,
            )
            for a in attempts
        ],
    )


def _state(value: str | None, field: str = "state") -> DeliveryState | None:
    if value is None or value == "":
        return None
    try:
        return DeliveryState(value)
    except ValueError:
        raise ValidationFailed.one(
            field, _("one of: %(states)s") % {"states": ", ".join(s.value for s in DeliveryState)}
        ) from None


def delivery_log(
    session: Session,
    actor: Actor,
    *,
    ref: str,
    state: str | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[DeliveryRead]:
    """A subscription's deliveries, newest first, each with its attempts (status code,
    latency, error class); never a body."""
    subscription = _subscription(session, actor, ref)
    deliveries = repository.deliveries_of(
        session,
        subscription_id=subscription.id,
        state=_state(state),
        limit=max(1, min(limit, 500)),
        before_id=before_id,
    )
    attempts = repository.attempts_of(session, delivery_ids=[d.id for d in deliveries])
    return [_delivery_read(d, attempts.get(d.id, [])) for d in deliveries]


def replay(
    session: Session,
    actor: Actor,
    *,
    ref: str,
    data: ReplayRequest | Mapping[str, Any],
) -> int:
    """Make deliveries of a subscription due again with a fresh count of attempts: the named
    ones (404 for one not of this subscription), or every one in a state (``dead`` or
    ``delivered``). A delivery being sent right now is left alone. Returns how many."""
    subscription = _subscription(session, actor, ref)
    request = parse(ReplayRequest, data)
    if (request.deliveries is None) == (request.state is None):
        raise ValidationFailed.one("deliveries", _("name the deliveries, or a state, not both"))
    now = utcnow()
    if request.deliveries is not None:
        for uid in request.deliveries:
            delivery = repository.delivery_by_uid(session, uid=uid) if len(uid) <= 36 else None
            if delivery is None or delivery.subscription_id != subscription.id:
                raise NotFound(_("No such delivery."))
        return repository.replay(
            session, subscription_id=subscription.id, now=now, uids=request.deliveries
        )
    state = _state(request.state)
    if state not in REPLAYABLE:
        raise ValidationFailed.one("state", _("only dead or delivered deliveries are replayed"))
    return repository.replay(session, subscription_id=subscription.id, now=now, state=state)


# ============================================================================ fan-out


def subscriber(*, department: str, scopes: Sequence[str] | None, client: str) -> Actor:
    """A subscription's department system as the one told: the API client that subscribed,
    in the role API clients act in, with the territorial scopes it subscribed with."""
    return Actor(
        name=client,
        role=CLIENT_ROLE,
        department=department,
        scopes=tuple(scope for scope in scopes or () if scope.isascii() and scope.isdigit()),
        kind="client",
    )


_SUBSCRIPTIONS_KEY = "webhooks.active_subscriptions"


def _active_subscriptions(session: Session) -> list[Any]:
    """``(topic, id, ref, department, scopes, created_by, callback_url)`` of the active,
    unexpired subscriptions, read once per transaction: the fan-out runs for every chunk of
    a batch of outbox entries, and a subscription made meanwhile is served from the next
    batch."""
    transaction = session.get_transaction()
    cached = session.info.get(_SUBSCRIPTIONS_KEY)
    if cached is None or cached[0] is not transaction:
        cached = (transaction, repository.active_subscriptions(session, now=utcnow()))
        session.info[_SUBSCRIPTIONS_KEY] = cached
    return cached[1]


def _subscriptions_for(active: Sequence[Any], topic: str) -> list[Any]:
    """``(id, ref, department, scopes, created_by, callback_url)`` of the ``active``
    subscriptions to ``topic`` or to every topic."""
    return [tuple(row[1:]) for row in active if row[0] in (topic, ALL_TOPICS)]


def fan_out(session: Session, message: Message) -> None:
    """The outbox consumer for one entry (``fan_out_many``)."""
    fan_out_many(session, (message,))


def fan_out_many(session: Session, messages: Sequence[Message]) -> None:
    """The outbox consumer: for each entry, one delivery per active subscription of its topic
    that the access gateway lets be told (its department's grant for the purpose, its
    territory, the person's and each record's place), the body as the gateway shows it to
    that department; the gateway logs each telling in this transaction. The deliveries of
    every entry are inserted together (one executemany); with no active subscription the
    entries cost nothing but the (cached) read of the subscriptions."""
    active = _active_subscriptions(session)
    if not active:
        return
    now = utcnow()
    rows: list[dict[str, Any]] = []
    for message in messages:
        topic = public_topic(message.topic)
        subscriptions = _subscriptions_for(active, topic)
        if subscriptions and message.subject_person_id is not None:
            rows.extend(_deliveries(session, message, topic, subscriptions, now))
    repository.insert_deliveries(session, rows)


def _deliveries(
    session: Session,
    message: Message,
    topic: str,
    subscriptions: Sequence[Any],
    now: datetime,
) -> list[dict[str, Any]]:
    """The delivery rows of an entry, one per subscription told (see ``fan_out_many``)."""
    assert message.subject_person_id is not None  # noqa: S101 - checked by the caller
    spec = default_catalogue().dataset(topic) if message.topic.startswith(DATASET_PREFIX) else None
    event_type = None if spec is not None else payload.event_type_of(message.payload, topic)
    uids = [str(uuid.uuid4()) for _subscription in subscriptions]
    recipients = []
    for uid, (_id, ref, department, scopes, created_by, callback_url) in zip(
        uids, subscriptions, strict=True
    ):
        host = urlsplit(callback_url).hostname
        detail = {
            "channel": "webhook",
            "topic": topic,
            "subscription": ref,
            "delivery": uid,
            "callback_host": host,
            "outbox_entry": message.entry_id,
            "effect": f"webhook {ref} to {host}",
        }
        if event_type is not None:
            detail |= {"event": event_type, "event_id": message.payload.get("event_id")}
        actor = subscriber(department=department, scopes=scopes, client=created_by)
        recipients.append(gateway.Recipient(actor=actor, detail=detail))
    if spec is not None:
        views = gateway.notification_views(
            session,
            recipients=recipients,
            purpose=NOTIFY_PURPOSE,
            person_id=message.subject_person_id,
            subject_fields=payload.subject_fields(None),
            records=sources.dataset_records(spec.slug),
        )
    else:
        assert event_type is not None  # noqa: S101 - a topic is a dataset or an event
        views = gateway.notification_views(
            session,
            recipients=recipients,
            purpose=NOTIFY_PURPOSE,
            person_id=message.subject_person_id,
            subject_fields=payload.subject_fields(event_type),
            gate=payload.event_gate(event_type),
            places=[str(code) for code in message.payload.get("grid_codes") or ()],
            facts=payload.event_facts(event_type, message.payload),
        )
    rows: list[dict[str, Any]] = []
    for uid, (subscription_id, ref, *_rest), told in zip(uids, subscriptions, views, strict=True):
        if told is None:
            continue
        if spec is not None:
            body = payload.dataset_body(told, spec=spec)
        else:
            body = payload.event_body(
                told, event_type=event_type or topic, payload=message.payload, topic=topic
            )
        rows.append(
            {
                "uid": uid,
                "subscription_id": subscription_id,
                "entry_id": message.entry_id,
                "topic": topic,
                "subject_person_id": message.subject_person_id,
                "subject_ref": told.subject["ref"],
                "payload": {"id": uid, "subscription": ref, "created_at": now.isoformat()} | body,
                "field_classes": list(told.classes),
                "state": DeliveryState.PENDING,
                "attempts": 0,
                "available_at": now,
                "created_at": now,
            }
        )
    return rows


def register_consumer(registry_: ConsumerRegistry, catalogue: Catalogue | None = None) -> None:
    """Add the fan-out to the outbox's consumers, for every life event type and dataset."""
    catalogue = catalogue or default_catalogue()
    outbox_topics = [spec.topic for spec in catalogue.events.values()] + [
        DATASET_PREFIX + slug for slug in catalogue.datasets
    ]
    registry_.batch_consumer(
        CONSUMER,
        topics=outbox_topics,
        description="Fan the entry out into one webhook delivery per subscription.",
    )(fan_out_many)
