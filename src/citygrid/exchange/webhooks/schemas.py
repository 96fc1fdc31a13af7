"""Shapes of the webhooks API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

MIN_SECRET = 16
MAX_SECRET = 200
#: The shortest lease a renewal may ask for; the longest is CITYGRID_WEBHOOK_LEASE_DAYS.
MIN_LEASE_SECONDS = 3600


class SubscriptionCreate(BaseModel):
    """What a department system registers."""

    model_config = ConfigDict(extra="forbid")

    topic: str = Field(
        min_length=1,
        max_length=60,
        description="A life event type (`death`), a dataset (`pensions`), or `*` for all",
        examples=["death"],
    )
    callback_url: str = Field(
        min_length=1, max_length=2000, examples=["https://dibao.example.gov.cn/hooks/citygrid"]
    )
    secret: str = Field(
        min_length=MIN_SECRET,
        max_length=MAX_SECRET,
        pattern=r"^[\x21-\x7e]+$",
        description="Signs every delivery (HMAC-SHA256); printable ASCII, 16 to 200 characters",
    )


class RenewalRequest(BaseModel):
    """A renewal of a subscription's lease (WebSub's ``hub.lease_seconds``)."""

    model_config = ConfigDict(extra="forbid")

    lease_seconds: int | None = Field(
        default=None,
        strict=True,
        description="How long the renewed subscription lasts from now: at least 3,600 s, at "
        "most CITYGRID_WEBHOOK_LEASE_DAYS (the default)",
        examples=[7776000],
    )


class SubscriptionRead(BaseModel):
    """A subscription as its department sees it (never its secret)."""

    id: str
    department: str
    topic: str
    callback_url: str
    state: str
    created_by: str
    created_at: datetime
    verified_at: datetime | None
    expires_at: datetime | None
    failure_reason: str | None
    deliveries: dict[str, int] = Field(
        default_factory=dict, description="Deliveries per state (pending, delivered, dead ...)"
    )


class AttemptRead(BaseModel):
    """One POST of a delivery."""

    attempt: int
    at: datetime
    status_code: int | None
    latency_ms: int
    error: str | None


class DeliveryRead(BaseModel):
    """A delivery in the log: no body (it may hold personal data)."""

    id: str
    topic: str
    subject: str | None
    state: str
    attempts: int
    created_at: datetime
    available_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    log: list[AttemptRead]


class ReplayRequest(BaseModel):
    """Which deliveries to send again: named ones, or every dead one."""

    model_config = ConfigDict(extra="forbid")

    deliveries: list[str] | None = Field(default=None, max_length=1000)
    state: str | None = Field(default=None, description="`dead` (or `delivered`)")


class ReplayAnswer(BaseModel):
    """How many deliveries were made due again."""

    replayed: int
