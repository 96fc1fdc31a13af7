"""Every query of the webhooks: subscriptions, the fan-out of outbox entries into deliveries,
claiming deliveries (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), recording attempts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from citygrid.exchange.webhooks.models import (
    DeliveryState,
    Subscription,
    SubscriptionState,
    WebhookAttempt,
    WebhookDelivery,
)
from citygrid.kit.queue import Window, claim_batch, next_window

_SUBS = cast(Table, Subscription.__table__)
_DELIVERIES = cast(Table, WebhookDelivery.__table__)
_ATTEMPTS = cast(Table, WebhookAttempt.__table__)
# Rows per IN list: far below every backend's limit on bound parameters.
_IN_CHUNK = 1000
# Literals, not parameters: the planner must see them to use the partial indexes.
_UNDELIVERED: tuple[ColumnElement[Any], ...] = (
    literal_column("'pending'"),
    literal_column("'claimed'"),
)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# ----------------------------------------------------------------------------- subscriptions


def add_subscription(session: Session, values: dict[str, Any]) -> Subscription:
    """Insert a subscription."""
    subscription = Subscription(**values)
    session.add(subscription)
    session.flush()
    return subscription


def subscription_by_ref(session: Session, *, ref: str) -> Subscription | None:
    """A subscription by its opaque reference."""
    return session.scalars(select(Subscription).where(Subscription.ref == ref)).first()


def renew_lease(
    session: Session,
    *,
    ref: str,
    department: str,
    lease_seconds: int,
    verified_at: datetime,
    expires_at: datetime,
) -> bool:
    """Make a department's subscription (not cancelled) active for a new lease; whether it
    was there. Meant as the first statement of its transaction: SQLite then takes its write
    lock before anything is read (a read first could not become this write once another
    writer committed: "database is locked" at once)."""
    statement = (
        update(Subscription)
        .where(
            Subscription.ref == ref,
            Subscription.department == department,
            Subscription.state != SubscriptionState.CANCELLED,
        )
        .values(
            state=SubscriptionState.ACTIVE,
            lease_seconds=lease_seconds,
            verified_at=verified_at,
            expires_at=expires_at,
            failure_reason=None,
        )
        .returning(Subscription.id)
        .execution_options(synchronize_session="fetch")
    )
    return session.execute(statement).first() is not None


def list_subscriptions(
    session: Session, *, department: str | None, include_cancelled: bool = False
) -> list[Subscription]:
    """Subscriptions of a department (every department's with None), newest first."""
    statement = select(Subscription).order_by(Subscription.id.desc())
    if department is not None:
        statement = statement.where(Subscription.department == department)
    if not include_cancelled:
        statement = statement.where(Subscription.state != SubscriptionState.CANCELLED)
    return list(session.scalars(statement))


def active_subscriptions(session: Session, *, now: datetime) -> list[Any]:
    """``(topic, id, ref, department, scopes, created_by, callback_url)`` of every active,
    unexpired subscription, by id."""
    statement = (
        select(
            _SUBS.c.topic,
            _SUBS.c.id,
            _SUBS.c.ref,
            _SUBS.c.department,
            _SUBS.c.scopes,
            _SUBS.c.created_by,
            _SUBS.c.callback_url,
        )
        .where(
            _SUBS.c.state == SubscriptionState.ACTIVE,
            or_(_SUBS.c.expires_at.is_(None), _SUBS.c.expires_at > now),
        )
        .order_by(_SUBS.c.id)
    )
    return list(session.execute(statement).all())


def delivery_counts(
    session: Session, *, subscription_ids: Sequence[int]
) -> dict[int, dict[str, int]]:
    """``{subscription id: {state: deliveries}}``."""
    if not subscription_ids:
        return {}
    statement = (
        select(_DELIVERIES.c.subscription_id, _DELIVERIES.c.state, func.count())
        .where(_DELIVERIES.c.subscription_id.in_(list(subscription_ids)))
        .group_by(_DELIVERIES.c.subscription_id, _DELIVERIES.c.state)
    )
    counts: dict[int, dict[str, int]] = {}
    for subscription_id, state, count in session.execute(statement):
        counts.setdefault(subscription_id, {})[str(state)] = count
    return counts


# ----------------------------------------------------------------------------- fan-out


def insert_deliveries(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert deliveries; one that exists for the same (subscription, entry) is left alone."""
    if not rows:
        return
    dialect_insert = postgresql.insert if _dialect(session) == "postgresql" else sqlite.insert
    statement = dialect_insert(_DELIVERIES).on_conflict_do_nothing(
        index_elements=["subscription_id", "entry_id"]
    )
    session.execute(statement, list(rows))


# ----------------------------------------------------------------------------- delivering


def active_topic_counts(session: Session, *, now: datetime) -> dict[str, int]:
    """Active, unexpired subscriptions per topic (``*`` included)."""
    statement = (
        select(_SUBS.c.topic, func.count())
        .where(
            _SUBS.c.state == SubscriptionState.ACTIVE,
            or_(_SUBS.c.expires_at.is_(None), _SUBS.c.expires_at > now),
        )
        .group_by(_SUBS.c.topic)
    )
    return {str(topic): int(count) for topic, count in session.execute(statement)}


def _due(now: datetime) -> ColumnElement[bool]:
    return or_(
        and_(_DELIVERIES.c.state == DeliveryState.PENDING, _DELIVERIES.c.available_at <= now),
        and_(_DELIVERIES.c.state == DeliveryState.CLAIMED, _DELIVERIES.c.claimed_until < now),
    )


def _active_subscription() -> ColumnElement[bool]:
    return exists().where(
        _SUBS.c.id == _DELIVERIES.c.subscription_id, _SUBS.c.state == SubscriptionState.ACTIVE
    )


def has_due(session: Session, *, now: datetime) -> bool:
    """True when some delivery of an active subscription may be claimed (a read: idle polls
    take no write lock; deliveries left by a deleted subscription do not wake the sender)."""
    statement = (
        select(_DELIVERIES.c.id)
        .where(_DELIVERIES.c.state.in_(_UNDELIVERED), _due(now), _active_subscription())
        .limit(1)
    )
    return session.execute(statement).first() is not None


def claim(
    session: Session, *, worker_id: str, now: datetime, lease_until: datetime, batch: int
) -> list[int]:
    """Claim up to ``batch`` due deliveries of active subscriptions; their ids, oldest first.

    A delivery waits while an older undelivered delivery of the same subscription about the
    same person exists (per-subject order). On PostgreSQL the candidates are locked with
    ``FOR UPDATE SKIP LOCKED``, so concurrent workers take different rows; on SQLite the
    UPDATE holds the one writer lock."""
    older = _DELIVERIES.alias("older")
    blocked = exists().where(
        older.c.subscription_id == _DELIVERIES.c.subscription_id,
        older.c.subject_person_id == _DELIVERIES.c.subject_person_id,
        older.c.id < _DELIVERIES.c.id,
        older.c.state.in_(_UNDELIVERED),
    )
    return claim_batch(
        session,
        _DELIVERIES,
        claimable=and_(
            _DELIVERIES.c.state.in_(_UNDELIVERED), _due(now), ~blocked, _active_subscription()
        ),
        batch=batch,
        claimed_state=DeliveryState.CLAIMED,
        worker_id=worker_id,
        lease_until=lease_until,
    )


def claimed_rows(session: Session, *, delivery_ids: Sequence[int]) -> list[Any]:
    """What sending these deliveries needs: ``(id, uid, topic, payload, attempts,
    subscription_id, callback_url, secret_encrypted)``, by id."""
    statement = (
        select(
            _DELIVERIES.c.id,
            _DELIVERIES.c.uid,
            _DELIVERIES.c.topic,
            _DELIVERIES.c.payload,
            _DELIVERIES.c.attempts,
            _DELIVERIES.c.subscription_id,
            _SUBS.c.callback_url,
            _SUBS.c.secret_encrypted,
        )
        .join(_SUBS, _SUBS.c.id == _DELIVERIES.c.subscription_id)
        .where(_DELIVERIES.c.id.in_(list(delivery_ids)))
        .order_by(_DELIVERIES.c.id)
    )
    return list(session.execute(statement).all())


def mark_delivered(
    session: Session, *, rows: Sequence[dict[str, Any]], worker_id: str, now: datetime
) -> None:
    """Deliveries the receiver accepted (``rows``: ``{"b_id", "b_status"}``); only those this
    worker still holds."""
    if not rows:
        return
    statement = (
        update(_DELIVERIES)
        .where(
            _DELIVERIES.c.id == bindparam("b_id"),
            _DELIVERIES.c.state == DeliveryState.CLAIMED,
            _DELIVERIES.c.claimed_by == worker_id,
        )
        .values(
            state=DeliveryState.DELIVERED,
            delivered_at=now,
            claimed_until=None,
            last_status_code=bindparam("b_status"),
            last_error=None,
        )
    )
    session.execute(statement, list(rows))


def mark_failed(session: Session, *, rows: Sequence[dict[str, Any]], worker_id: str) -> None:
    """Deliveries that failed (``rows``: ``{"b_id", "b_state", "b_available_at", "b_status",
    "b_error"}``): pending again from ``b_available_at``, or dead."""
    if not rows:
        return
    statement = (
        update(_DELIVERIES)
        .where(
            _DELIVERIES.c.id == bindparam("b_id"),
            _DELIVERIES.c.state == DeliveryState.CLAIMED,
            _DELIVERIES.c.claimed_by == worker_id,
        )
        .values(
            state=bindparam("b_state"),
            available_at=bindparam("b_available_at"),
            claimed_until=None,
            last_status_code=bindparam("b_status"),
            last_error=bindparam("b_error"),
        )
    )
    session.execute(statement, list(rows))


def insert_attempts(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Append attempts to the delivery log (one executemany)."""
    if rows:
        session.execute(insert(_ATTEMPTS), list(rows))


def replay(
    session: Session,
    *,
    subscription_id: int,
    now: datetime,
    uids: Sequence[str] | None = None,
    state: DeliveryState | None = None,
) -> int:
    """Make deliveries of a subscription due again with a fresh count of attempts: the named
    ones, or every one in ``state``; how many."""
    statement = update(_DELIVERIES).where(
        _DELIVERIES.c.subscription_id == subscription_id,
        _DELIVERIES.c.state != DeliveryState.CLAIMED,
    )
    if uids is not None:
        statement = statement.where(_DELIVERIES.c.uid.in_(list(uids)))
    if state is not None:
        statement = statement.where(_DELIVERIES.c.state == state)
    result = session.execute(
        statement.values(
            state=DeliveryState.PENDING, available_at=now, attempts=0, claimed_until=None
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- the log


def deliveries_of(
    session: Session,
    *,
    subscription_id: int,
    state: DeliveryState | None = None,
    limit: int = 50,
    before_id: int | None = None,
) -> list[WebhookDelivery]:
    """A subscription's deliveries, newest first."""
    statement = (
        select(WebhookDelivery)
        .where(WebhookDelivery.subscription_id == subscription_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if state is not None:
        statement = statement.where(WebhookDelivery.state == state)
    if before_id is not None:
        statement = statement.where(WebhookDelivery.id < before_id)
    return list(session.scalars(statement))


def delivery_by_uid(session: Session, *, uid: str) -> WebhookDelivery | None:
    """A delivery by its public id."""
    return session.scalars(select(WebhookDelivery).where(WebhookDelivery.uid == uid)).first()


def attempts_of(
    session: Session, *, delivery_ids: Sequence[int]
) -> dict[int, list[WebhookAttempt]]:
    """The attempts of these deliveries, oldest first, by delivery id."""
    if not delivery_ids:
        return {}
    statement = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(list(delivery_ids)))
        .order_by(WebhookAttempt.id)
    )
    found: dict[int, list[WebhookAttempt]] = {}
    for attempt in session.scalars(statement):
        found.setdefault(attempt.delivery_id, []).append(attempt)
    return found


def delivery_state_counts(session: Session) -> dict[str, int]:
    """Deliveries per state, across subscriptions."""
    statement = select(_DELIVERIES.c.state, func.count()).group_by(_DELIVERIES.c.state)
    return {str(state): n for state, n in session.execute(statement)}


# ----------------------------------------------------------------------------- retention


def _finished(
    table: Any, *, delivered_before: datetime, dead_before: datetime
) -> ColumnElement[bool]:
    """Delivered before ``delivered_before``, or dead and last tried before ``dead_before``."""
    return or_(
        and_(table.c.state == DeliveryState.DELIVERED, table.c.delivered_at < delivered_before),
        and_(table.c.state == DeliveryState.DEAD, table.c.available_at < dead_before),
    )


def delivery_window(session: Session, *, after: int, size: int) -> Window | None:
    """The next ``size`` deliveries by id after ``after`` (see ``kit.queue.next_window``)."""
    return next_window(session, _DELIVERIES, after=after, size=size)


def finished_delivery_ids(
    session: Session,
    *,
    window: Window,
    delivered_before: datetime,
    dead_before: datetime,
    lock: bool,
) -> list[int]:
    """The deliveries of a window of ids that the purge may delete, oldest first (see
    ``_finished``); pending and claimed ones never are. With ``lock``, PostgreSQL locks
    them, skipping rows another transaction holds (a replay, a sender)."""
    statement = (
        select(_DELIVERIES.c.id)
        .where(
            _DELIVERIES.c.id > window.after,
            _DELIVERIES.c.id <= window.last,
            _finished(_DELIVERIES, delivered_before=delivered_before, dead_before=dead_before),
        )
        .order_by(_DELIVERIES.c.id)
    )
    if lock and _dialect(session) == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return list(session.execute(statement).scalars())


def entry_has_deliveries(
    entry_id: ColumnElement[Any],
    *,
    unless_finished: tuple[datetime, datetime] | None = None,
) -> ColumnElement[bool]:
    """Whether deliveries point at an outbox entry (given its id column); with
    ``unless_finished=(delivered_before, dead_before)``, only deliveries a purge with those
    limits would keep count."""
    holders = exists().where(_DELIVERIES.c.entry_id == entry_id)
    if unless_finished is not None:
        delivered_before, dead_before = unless_finished
        holders = holders.where(
            ~_finished(_DELIVERIES, delivered_before=delivered_before, dead_before=dead_before)
        )
    return holders


def count_attempts(session: Session, *, delivery_ids: Sequence[int]) -> int:
    """How many attempts these deliveries have in the log."""
    total = 0
    for start in range(0, len(delivery_ids), _IN_CHUNK):
        chunk = list(delivery_ids[start : start + _IN_CHUNK])
        total += session.execute(
            select(func.count()).select_from(_ATTEMPTS).where(_ATTEMPTS.c.delivery_id.in_(chunk))
        ).scalar_one()
    return int(total)


def delete_deliveries(session: Session, *, delivery_ids: Sequence[int]) -> tuple[int, int]:
    """Delete deliveries and their attempts; ``(attempts, deliveries)`` deleted."""
    attempts = deliveries = 0
    for start in range(0, len(delivery_ids), _IN_CHUNK):
        chunk = list(delivery_ids[start : start + _IN_CHUNK])
        done = session.execute(delete(_ATTEMPTS).where(_ATTEMPTS.c.delivery_id.in_(chunk)))
        attempts += int(done.rowcount or 0)  # type: ignore[attr-defined]
        done = session.execute(delete(_DELIVERIES).where(_DELIVERIES.c.id.in_(chunk)))
        deliveries += int(done.rowcount or 0)  # type: ignore[attr-defined]
    return attempts, deliveries
