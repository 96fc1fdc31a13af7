"""Sending webhooks: the callback's challenge, and the worker's rounds of deliveries.

A round (``run_once``) claims a batch of due deliveries in one transaction (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL: several workers never take the same delivery), POSTs them
concurrently (``Sender``: one keep-alive ``httpx.Client`` per callback origin, a thread pool
of ``CITYGRID_WEBHOOK_CONCURRENCY``), then records every outcome in one transaction: the
delivery's state and the attempt in the delivery log. The access log's "told" entry is not
written here: the access gateway wrote it when the fan-out built the body (``service.fan_out``),
in the transaction that stored the delivery; the delivery id links the two logs. The claim
never holds two deliveries of one subscription about one person (the older waits for nothing,
the newer waits for the older), so each subscriber hears of a person's changes in the order
they happened.

A failed attempt (a status other than 2xx, a timeout, a refused connection, a refused
address) is retried after an exponential backoff with jitter (about 2, 4, 8 ... s, at most
``MAX_BACKOFF``); after ``CITYGRID_WEBHOOK_MAX_ATTEMPTS`` attempts the delivery is dead and
no longer holds the person's later deliveries back; replay makes it due again.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from sqlalchemy.orm import Session

from citygrid.exchange.webhooks import repository
from citygrid.exchange.webhooks.models import DeliveryState
from citygrid.exchange.webhooks.security import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    TOPIC_HEADER,
    AddressGuard,
    decrypt_secret,
    signature,
)
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings

logger = logging.getLogger("citygrid.exchange.webhooks")

SessionFactory = Callable[[], Session]

DEFAULT_BATCH = 200
DEFAULT_LEASE = timedelta(seconds=60)
MAX_BACKOFF = timedelta(minutes=30)
USER_AGENT = "citygrid-webhooks/1"
CHALLENGE_MAX_BYTES = 4096


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """The wait before attempt ``attempts + 1``: 2^attempts seconds (at most ``MAX_BACKOFF``),
    of which the second half is random ("equal jitter"), so that receivers coming back are
    not hit by every retry at once."""
    base = min(2.0 ** max(attempts, 1), MAX_BACKOFF.total_seconds())
    spread = (rng or random).random()  # noqa: S311 - jitter, not a secret
    return timedelta(seconds=base / 2 + spread * base / 2)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(
        settings.webhook_timeout, connect=settings.webhook_connect_timeout, pool=10.0
    )


# ----------------------------------------------------------------------------- challenge


@dataclass(frozen=True)
class ChallengeResult:
    """Whether the callback echoed the challenge, and why not."""

    ok: bool
    reason: str | None = None


def verify_callback(
    url: str, *, topic: str, lease_seconds: int, settings: Settings
) -> ChallengeResult:
    """WebSub's verification of intent: GET the callback with ``hub.mode=subscribe``,
    ``hub.topic``, a random ``hub.challenge`` and ``hub.lease_seconds``; the subscriber must
    answer 2xx with the challenge as the body."""
    challenge = secrets.token_urlsafe(32)
    params = {
        "hub.mode": "subscribe",
        "hub.topic": topic,
        "hub.challenge": challenge,
        "hub.lease_seconds": str(lease_seconds),
    }
    try:
        with (
            httpx.Client(
                timeout=_timeout(settings),
                follow_redirects=False,
                headers={"User-Agent": USER_AGENT},
                trust_env=False,
            ) as client,
            client.stream("GET", url, params=params) as response,
        ):
            body = b""
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > CHALLENGE_MAX_BYTES:
                    break
            status = response.status_code
    except httpx.HTTPError as exc:
        return ChallengeResult(False, type(exc).__name__)
    if not 200 <= status < 300:
        return ChallengeResult(False, f"status {status}")
    if body.strip() != challenge.encode("ascii"):
        return ChallengeResult(False, "challenge_mismatch")
    return ChallengeResult(True)


# ----------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Outcome:
    """One POST: the status code (None without an answer), latency and error class."""

    delivery_id: int
    status_code: int | None
    latency_ms: int
    error: str | None

    @property
    def ok(self) -> bool:
        """The receiver accepted the delivery."""
        return self.error is None


class Sender:
    """Sends deliveries: a keep-alive client per callback origin, a pool of threads, an
    address guard. One per worker process; close it when done."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.guard = AddressGuard(allow_private=settings.webhook_private_callbacks_allowed)
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(
            max_workers=settings.webhook_concurrency, thread_name_prefix="citygrid-webhook"
        )
        self._secrets: dict[str, str] = {}

    def _client(self, origin: str) -> httpx.Client:
        with self._lock:
            client = self._clients.get(origin)
            if client is None:
                limit = self.settings.webhook_concurrency
                client = httpx.Client(
                    timeout=_timeout(self.settings),
                    follow_redirects=False,
                    headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
                    limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                    trust_env=False,
                )
                self._clients[origin] = client
            return client

    def secret(self, encrypted: str) -> str:
        """A subscription's secret, decrypted once per process."""
        found = self._secrets.get(encrypted)
        if found is None:
            found = decrypt_secret(encrypted, secret_key=self.settings.require_secret_key())
            self._secrets[encrypted] = found
        return found

    def post(self, row: Any) -> Outcome:
        """POST one claimed delivery (a row of ``repository.claimed_rows``)."""
        delivery_id, uid, topic, payload, attempts, _sub, url, encrypted = tuple(row)[:8]
        refusal = self.guard.refusal(url)
        if refusal is not None:
            return Outcome(delivery_id, None, 0, f"refused:{refusal}")
        try:
            secret = self.secret(encrypted)
        except ValueError:
            return Outcome(delivery_id, None, 0, "secret_unreadable")
        body = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
        timestamp = str(int(time.time()))
        headers = {
            DELIVERY_HEADER: uid,
            TOPIC_HEADER: topic,
            TIMESTAMP_HEADER: timestamp,
            ATTEMPT_HEADER: str(attempts),
            SIGNATURE_HEADER: signature(secret, timestamp, body),
        }
        started = time.perf_counter()
        try:
            response = self._client(_origin(url)).post(url, content=body, headers=headers)
            response.read()
        except Exception as exc:  # any failure is this delivery's, never the batch's
            # The type only: an exception's text may name the URL or hold personal data.
            latency = int((time.perf_counter() - started) * 1000)
            return Outcome(delivery_id, None, latency, type(exc).__name__)
        latency = int((time.perf_counter() - started) * 1000)
        status = response.status_code
        error = None if 200 <= status < 300 else f"status {status}"
        return Outcome(delivery_id, status, latency, error)

    def post_all(self, rows: Sequence[Any]) -> list[Outcome]:
        """POST the deliveries concurrently; their outcomes, in order."""
        if len(rows) == 1:
            return [self.post(rows[0])]
        return list(self._pool.map(self.post, rows))

    def close(self) -> None:
        """Close the connections and the threads."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- rounds


@dataclass
class RoundReport:
    """What a round of sending did."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, other: RoundReport) -> None:
        """Add another round's counts."""
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retried += other.retried
        self.dead += other.dead
        self.errors.extend(other.errors)


def claim(
    session_factory: SessionFactory,
    *,
    worker_id: str,
    batch: int = DEFAULT_BATCH,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
) -> list[Any]:
    """Claim up to ``batch`` due deliveries in a transaction of its own; what sending them
    needs (``repository.claimed_rows``)."""
    moment = _utc(now or utcnow())
    with session_factory() as session, session.begin():
        if not repository.has_due(session, now=moment):
            return []
    with session_factory() as session, session.begin():
        ids = repository.claim(
            session, worker_id=worker_id, now=moment, lease_until=moment + lease, batch=batch
        )
        return repository.claimed_rows(session, delivery_ids=ids) if ids else []


def record(
    session_factory: SessionFactory,
    rows: Sequence[Any],
    outcomes: Sequence[Outcome],
    *,
    worker_id: str,
    max_attempts: int,
    now: datetime | None = None,
) -> RoundReport:
    """Write the outcomes of a round in one transaction (the states and the delivery log)."""
    moment = _utc(now or utcnow())
    report = RoundReport(claimed=len(rows))
    delivered: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    attempts: list[dict[str, Any]] = []
    for row, outcome in zip(rows, outcomes, strict=True):
        delivery_id, attempt, subscription_id = row[0], row[4], row[5]
        attempts.append(
            {
                "delivery_id": delivery_id,
                "subscription_id": subscription_id,
                "attempt": attempt,
                "attempted_at": moment,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error,
                "worker": worker_id[:100],
            }
        )
        if outcome.ok:
            report.delivered += 1
            delivered.append({"b_id": delivery_id, "b_status": outcome.status_code})
            continue
        dead = attempt >= max_attempts
        report.dead += dead
        report.retried += not dead
        report.errors.append(str(outcome.error))
        failed.append(
            {
                "b_id": delivery_id,
                "b_state": DeliveryState.DEAD if dead else DeliveryState.PENDING,
                "b_available_at": moment + backoff(attempt),
                "b_status": outcome.status_code,
                "b_error": outcome.error,
            }
        )
    with session_factory() as session, session.begin():
        repository.mark_delivered(session, rows=delivered, worker_id=worker_id, now=moment)
        repository.mark_failed(session, rows=failed, worker_id=worker_id)
        repository.insert_attempts(session, attempts)
    if report.dead:
        logger.warning("webhooks: %d deliveries dead after %d attempts", report.dead, max_attempts)
    return report


def run_once(
    session_factory: SessionFactory,
    sender: Sender,
    *,
    worker_id: str,
    batch: int = DEFAULT_BATCH,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
    max_attempts: int | None = None,
) -> RoundReport:
    """Claim a batch, send it, record the outcomes (``claimed == 0``: nothing was due)."""
    rows = claim(session_factory, worker_id=worker_id, batch=batch, lease=lease, now=now)
    if not rows:
        return RoundReport()
    outcomes = sender.post_all(rows)
    return record(
        session_factory,
        rows,
        outcomes,
        worker_id=worker_id,
        max_attempts=max_attempts or sender.settings.webhook_max_attempts,
        now=now,
    )


def drain(
    session_factory: SessionFactory,
    sender: Sender,
    *,
    worker_id: str,
    batch: int = DEFAULT_BATCH,
    now: datetime | None = None,
    max_rounds: int = 1000,
    max_attempts: int | None = None,
) -> RoundReport:
    """Rounds until nothing is due (or ``max_rounds``); the sum of what they did."""
    total = RoundReport()
    for _round in range(max_rounds):
        report = run_once(
            session_factory,
            sender,
            worker_id=worker_id,
            batch=batch,
            now=now,
            max_attempts=max_attempts,
        )
        total.add(report)
        if report.claimed == 0:
            break
    return total
