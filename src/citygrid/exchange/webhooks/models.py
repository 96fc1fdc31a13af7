"""Tables of the webhooks: subscriptions, their deliveries (one per subscription and outbox
entry) and every attempt at a delivery (the delivery log)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from citygrid.kit.models import Base, BigId, TimestampMixin, str_enum, utcnow


class SubscriptionState(enum.StrEnum):
    """Where a subscription is in its life."""

    PENDING = "pending"  # registered, the callback not yet verified
    ACTIVE = "active"  # verified: deliveries are made
    FAILED = "failed"  # the challenge failed: nothing is delivered
    CANCELLED = "cancelled"  # deleted by its department (kept for the delivery log)


class DeliveryState(enum.StrEnum):
    """Where a webhook delivery is."""

    PENDING = "pending"  # waiting (``available_at`` says from when)
    CLAIMED = "claimed"  # a worker is sending it until ``claimed_until``
    DELIVERED = "delivered"  # the receiver answered 2xx
    DEAD = "dead"  # gave up after too many attempts; replay by CLI or page


class Subscription(TimestampMixin, Base):
    """A department system's subscription to a topic (a life event type, a dataset, or ``*``)."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Opaque public id, used in URLs.
    ref: Mapped[str] = mapped_column(String(24), unique=True)
    department: Mapped[str] = mapped_column(String(40), index=True)
    # The API client (or account) that registered it.
    created_by: Mapped[str] = mapped_column(String(100))
    # Territorial code prefixes of the registering client: news about people outside them is
    # never delivered.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    topic: Mapped[str] = mapped_column(String(60))
    callback_url: Mapped[str] = mapped_column(String(2000))
    # The signing secret, encrypted at rest (Fernet, key derived from CITYGRID_SECRET_KEY).
    secret_encrypted: Mapped[str] = mapped_column(Text)
    state: Mapped[SubscriptionState] = mapped_column(
        str_enum(SubscriptionState), default=SubscriptionState.PENDING
    )
    lease_seconds: Mapped[int] = mapped_column(Integer)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why the challenge failed: an error class or "status 404", never a body.
    failure_reason: Mapped[str | None] = mapped_column(String(100))
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebhookDelivery(Base):
    """One outbox entry for one subscription: the payload as the department may see it, and
    where its sending stands."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "entry_id", name="uq_webhook_deliveries_sub_entry"),
        Index(
            "ix_webhook_deliveries_undelivered",
            "id",
            postgresql_where=text("state IN ('pending', 'claimed')"),
            sqlite_where=text("state IN ('pending', 'claimed')"),
        ),
        Index(
            "ix_webhook_deliveries_order",
            "subscription_id",
            "subject_person_id",
            "id",
            postgresql_where=text("state IN ('pending', 'claimed')"),
            sqlite_where=text("state IN ('pending', 'claimed')"),
        ),
        Index("ix_webhook_deliveries_subscription", "subscription_id", "id"),
        # The purge asks whether an outbox entry still has deliveries, and deleting an entry
        # makes the database check the foreign key: both look deliveries up by entry.
        Index("ix_webhook_deliveries_entry", "entry_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The receiver's idempotency key (header X-Citygrid-Delivery), the same on every attempt.
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("webhook_subscriptions.id"))
    entry_id: Mapped[int] = mapped_column(ForeignKey("outbox.id"))
    topic: Mapped[str] = mapped_column(String(60))
    subject_person_id: Mapped[int | None] = mapped_column(Integer)
    subject_ref: Mapped[str | None] = mapped_column(String(24))
    # The JSON body, already filtered by the department's policy grant.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The field classes the payload carries (as the "told" audit entry of the fan-out names them).
    field_classes: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[DeliveryState] = mapped_column(
        str_enum(DeliveryState), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(100))


class WebhookAttempt(Base):
    """One POST of a delivery: when, the answer's status code, how long it took, and the
    error's class (never a body)."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        Index("ix_webhook_attempts_delivery", "delivery_id"),
        Index("ix_webhook_attempts_subscription", "subscription_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"))
    subscription_id: Mapped[int] = mapped_column(Integer)
    attempt: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(100))
    worker: Mapped[str] = mapped_column(String(100))
