"""The transactional outbox (DESIGN.md, invariant 3): a change and the news of it commit
together; workers deliver the news to consumers at least once, and each consumer applies it
exactly once.

- ``enqueue`` writes entries in the caller's transaction (one executemany).
- A ``Consumer`` is a named handler of some topics; the ``ConsumerRegistry`` holds them (the
  internal reactions are ``citygrid.exchange.reactions.REGISTRY``).
- ``run_once`` claims a batch (``claim``) and delivers it (``deliver``). Claiming is one
  UPDATE: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so that several workers take different
  entries; on SQLite the single writer lock. A claim is a lease (``claimed_until``): a worker
  that dies leaves its entries to be claimed again when the lease runs out.
- Entries are delivered a chunk per transaction (``DELIVERY_CHUNK``): its first write renews
  their lease. Each consumer (in registration order) takes the chunk's entries of its topics
  not yet in ``outbox_deliveries`` together: one savepoint holds their delivery records and
  the consumer's effect (its batch handler once, or its handler for each): all commit or
  none does, and the unique key (entry, consumer) refuses a second record, so a redelivered
  entry (a lease that ran out under a slow worker) is not applied twice. When that savepoint
  fails, the consumer takes the entries again one savepoint each, so that only the failing
  entry fails: it is retried with exponential backoff, the others' effects commit; after
  ``max_attempts`` the entry is ``dead`` and waits for an operator.
- Entries about one person are delivered in order: an entry waits while an older undelivered
  (pending or claimed) entry about the same person exists. A dead entry no longer holds the
  person's later entries back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from citygrid.exchange import repository
from citygrid.kit.models import utcnow

logger = logging.getLogger("citygrid.exchange.outbox")

SessionFactory = Callable[[], Session]

DEFAULT_BATCH = 100
DEFAULT_LEASE = timedelta(seconds=60)
DEFAULT_MAX_ATTEMPTS = 10
# Entries per delivery transaction, handed to each consumer together: fewer commits,
# savepoints and statements per entry, and still a short hold on SQLite's writer lock (a
# chunk of 50 takes about as long as a chunk of 10 did when each entry had savepoints of
# its own; see docs/exchange.md, "Delivering").
DELIVERY_CHUNK = 50
MAX_BACKOFF = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """News of a change, to be written to the outbox: a topic, the person it is about (id and
    grid, for ordering and scope) and a payload of ids and facts, never more personal data
    than a consumer needs (consumers re-read through the services)."""

    topic: str
    payload: Mapping[str, Any]
    subject_person_id: int | None = None
    subject_grid_code: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """An outbox entry as a consumer receives it."""

    entry_id: int
    topic: str
    subject_person_id: int | None
    subject_grid_code: str | None
    payload: Mapping[str, Any]
    attempt: int


Handler = Callable[[Session, Message], None]
BatchHandler = Callable[[Session, Sequence[Message]], None]


@dataclass(frozen=True, slots=True)
class Consumer:
    """A named handler of some topics. The name is written into every delivery record: keep
    it stable.

    ``batch_handler``, when given, applies several messages at once (at most one per person,
    in the order given) with the effect of ``handler`` applied to each in turn: the
    delivery hands it a chunk's messages together (see ``deliver``)."""

    name: str
    topics: frozenset[str]
    handler: Handler
    description: str = ""
    batch_handler: BatchHandler | None = None


class ConsumerRegistry:
    """The consumers of the outbox, by name."""

    def __init__(self, consumers: Sequence[Consumer] = ()) -> None:
        self._consumers: dict[str, Consumer] = {}
        for consumer in consumers:
            self.register(consumer)

    def register(self, consumer: Consumer) -> Consumer:
        """Add a consumer; its name must be new."""
        if consumer.name in self._consumers:
            raise ValueError(f"consumer {consumer.name} is registered twice")
        self._consumers[consumer.name] = consumer
        return consumer

    def consumer(
        self, name: str, *, topics: Sequence[str], description: str = ""
    ) -> Callable[[Handler], Handler]:
        """Decorator: register the function as the handler of a consumer."""

        def decorate(handler: Handler) -> Handler:
            self.register(Consumer(name, frozenset(topics), handler, description))
            return handler

        return decorate

    def batch_consumer(
        self, name: str, *, topics: Sequence[str], description: str = ""
    ) -> Callable[[BatchHandler], BatchHandler]:
        """Decorator: register the function as the batch handler of a consumer; its handler
        of one message is the same function given that message alone, so that a reaction is
        written once."""

        def decorate(batch_handler: BatchHandler) -> BatchHandler:
            def handler(session: Session, message: Message) -> None:
                batch_handler(session, (message,))

            self.register(Consumer(name, frozenset(topics), handler, description, batch_handler))
            return batch_handler

        return decorate

    def for_topic(self, topic: str) -> tuple[Consumer, ...]:
        """The consumers of a topic, in registration order."""
        return tuple(c for c in self._consumers.values() if topic in c.topics)

    def __iter__(self) -> Iterator[Consumer]:
        return iter(self._consumers.values())


# ============================================================================ writing

# Set after a commit that wrote outbox entries: the embedded worker wakes up at once
# instead of at its next poll (other processes poll).
_work_arrived = threading.Event()
_WAKE_KEY = "citygrid.outbox.wake"


def enqueue(session: Session, messages: Sequence[OutboxMessage]) -> None:
    """Write outbox entries in the caller's transaction."""
    if not messages:
        return
    now = utcnow()
    repository.insert_outbox(
        session,
        [
            {
                "topic": message.topic,
                "subject_person_id": message.subject_person_id,
                "subject_grid_code": message.subject_grid_code,
                "payload": dict(message.payload),
                "created_at": now,
                "available_at": now,
                "attempts": 0,
                "state": "pending",
            }
            for message in messages
        ],
    )
    session.info[_WAKE_KEY] = True


def enqueue_about_persons(
    session: Session,
    *,
    topic: str,
    person_ids: Sequence[int],
    grid_codes: Sequence[str | None],
    payloads: Sequence[Mapping[str, Any]],
) -> None:
    """Write outbox entries of one topic, one per person (equally long columns: person,
    grid, payload), in the caller's transaction: the bulk path of ``enqueue``, for thousands
    of changed rows of a batch."""
    if not person_ids:
        return
    now = utcnow()
    repository.insert_outbox_columns(
        session,
        {
            "subject_person_id": person_ids,
            "subject_grid_code": grid_codes,
            "payload": payloads,
        },
        shared={
            "topic": topic,
            "created_at": now,
            "available_at": now,
            "attempts": 0,
            "state": "pending",
        },
    )
    session.info[_WAKE_KEY] = True


@event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    if session.info.pop(_WAKE_KEY, False):
        _work_arrived.set()


@event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop(_WAKE_KEY, None)


def wait_for_work(timeout: float) -> bool:
    """Wait until this process commits outbox entries, or ``timeout`` seconds; True if woken."""
    woken = _work_arrived.wait(timeout)
    _work_arrived.clear()
    return woken


# ============================================================================ delivering


@dataclass
class DeliveryReport:
    """What a delivery round did."""

    claimed: int = 0
    delivered: int = 0  # entries every consumer has now applied
    failed: int = 0  # entries left for a retry (or dead)
    applied: int = 0  # (entry, consumer) effects committed by this round
    already_applied: int = 0  # (entry, consumer) pairs found delivered before (redelivery)
    errors: list[str] = field(default_factory=list)

    def add(self, other: DeliveryReport) -> None:
        """Add another round's counts to this one."""
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.failed += other.failed
        self.applied += other.applied
        self.already_applied += other.already_applied
        self.errors.extend(other.errors)


class _AlreadyDelivered(Exception):
    """The (entry, consumer) delivery record exists: another delivery got there first."""


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def backoff(attempts: int) -> timedelta:
    """How long to wait before attempt ``attempts + 1``: 2, 4, 8 ... seconds, at most 10 min."""
    return min(timedelta(seconds=2 ** max(attempts, 1)), MAX_BACKOFF)


def claim(
    session_factory: SessionFactory,
    *,
    worker_id: str,
    batch: int = DEFAULT_BATCH,
    lease: timedelta = DEFAULT_LEASE,
    now: datetime | None = None,
) -> list[int]:
    """Claim up to ``batch`` entries for ``worker_id`` in a transaction of its own; their ids."""
    moment = _utc(now or utcnow())
    with session_factory() as session, session.begin():
        if not repository.outbox_has_due(session, now=moment):
            return []
    with session_factory() as session, session.begin():
        return repository.claim_outbox(
            session, worker_id=worker_id, now=moment, lease_until=moment + lease, batch=batch
        )


def _apply_one(
    session: Session,
    consumer: Consumer,
    message: Message,
    *,
    worker_id: str,
    report: DeliveryReport,
    errors: dict[int, list[str]],
) -> None:
    """Apply one message to a consumer in a savepoint of its own: its delivery record and its
    effect commit together, or neither does (a failure is noted in ``errors``)."""
    try:
        with session.begin_nested():
            try:
                repository.insert_delivery(
                    session, entry_id=message.entry_id, consumer=consumer.name, worker=worker_id
                )
            except IntegrityError:
                raise _AlreadyDelivered from None
            consumer.handler(session, message)
        report.applied += 1
    except _AlreadyDelivered:
        report.already_applied += 1
    except Exception as exc:
        _failed(consumer, message, exc, errors)


def _failed(
    consumer: Consumer, message: Message, exc: Exception, errors: dict[int, list[str]]
) -> None:
    # The type only, in the entry and in the log: an exception's text may hold personal data.
    errors.setdefault(message.entry_id, []).append(f"{consumer.name}: {type(exc).__name__}")
    logger.error(
        "outbox entry %s: consumer %s failed with %s",
        message.entry_id,
        consumer.name,
        type(exc).__name__,
    )


def _apply(
    session: Session,
    consumer: Consumer,
    messages: Sequence[Message],
    *,
    worker_id: str,
    report: DeliveryReport,
    errors: dict[int, list[str]],
) -> None:
    """Apply messages to a consumer: all in one savepoint (their delivery records in one
    executemany, then the batch handler once, or the handler for each); when that fails,
    one savepoint per message, so that only the failing one fails. A handler of one message
    that fails is not run again: the others go together again without it."""
    pending = list(messages)
    while len(pending) > 1:
        failing: int | None = None
        try:
            with session.begin_nested():
                try:
                    repository.insert_deliveries(
                        session,
                        entry_ids=[message.entry_id for message in pending],
                        consumer=consumer.name,
                        worker=worker_id,
                    )
                except IntegrityError:
                    # Another delivery applied one of them: one by one, it is left alone.
                    raise _AlreadyDelivered from None
                if consumer.batch_handler is not None:
                    consumer.batch_handler(session, pending)
                else:
                    for failing, message in enumerate(pending):  # noqa: B007 - read below
                        consumer.handler(session, message)
                    failing = None
        except _AlreadyDelivered:
            break
        except Exception as exc:
            if failing is None:
                break  # the batch handler (or the records) failed: one by one
            _failed(consumer, pending[failing], exc, errors)
            del pending[failing]
            continue
        report.applied += len(pending)
        return
    for message in pending:
        _apply_one(session, consumer, message, worker_id=worker_id, report=report, errors=errors)


def _deliver_chunk(
    session: Session,
    registry: ConsumerRegistry,
    rows: Sequence[Any],
    *,
    done: Mapping[int, set[str]],
    worker_id: str,
    now: datetime,
    max_attempts: int,
    report: DeliveryReport,
) -> list[int]:
    """Apply held entries to each consumer (in registration order) that has not applied them
    yet; the ids of the entries every consumer now has. A failed entry is left for a retry
    after its backoff, or dead after ``max_attempts``."""
    messages = [
        Message(entry_id, topic, person_id, grid_code, payload or {}, attempts)
        for entry_id, topic, person_id, grid_code, payload, attempts in rows
    ]
    errors: dict[int, list[str]] = {}
    for consumer in registry:
        due: list[Message] = []
        for message in messages:
            if message.topic not in consumer.topics:
                continue
            if consumer.name in done.get(message.entry_id, ()):
                report.already_applied += 1
            else:
                due.append(message)
        if due:
            _apply(session, consumer, due, worker_id=worker_id, report=report, errors=errors)
    delivered: list[int] = []
    for message in messages:
        failures = errors.get(message.entry_id)
        if not failures:
            report.delivered += 1
            delivered.append(message.entry_id)
            continue
        report.failed += 1
        report.errors.extend(failures)
        repository.mark_failed(
            session,
            entry_id=message.entry_id,
            error="; ".join(failures)[:2000],
            available_at=now + backoff(message.attempt),
            dead=message.attempt >= max_attempts,
        )
    return delivered


def deliver(
    session_factory: SessionFactory,
    entry_ids: Sequence[int],
    *,
    worker_id: str,
    registry: ConsumerRegistry | None = None,
    now: datetime | None = None,
    lease: timedelta = DEFAULT_LEASE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    chunk: int | None = None,
) -> DeliveryReport:
    """Deliver claimed entries, ``chunk`` (``DELIVERY_CHUNK``) per transaction, each
    consumer's effect on them in a savepoint (see the module's docstring)."""
    registry = registry if registry is not None else default_registry()
    chunk = chunk or DELIVERY_CHUNK
    report = DeliveryReport(claimed=len(entry_ids))
    for start in range(0, len(entry_ids), chunk):
        moment = _utc(now or utcnow())
        with session_factory() as session, session.begin():
            held = repository.hold_entries(
                session,
                entry_ids=entry_ids[start : start + chunk],
                worker_id=worker_id,
                until=moment + lease,
            )
            if not held:
                continue
            delivered = _deliver_chunk(
                session,
                registry,
                held,
                done=repository.delivered_consumers(session, entry_ids=[row[0] for row in held]),
                worker_id=worker_id,
                now=moment,
                max_attempts=max_attempts,
                report=report,
            )
            repository.mark_delivered(session, entry_ids=delivered, now=moment)
    return report


def run_once(
    session_factory: SessionFactory,
    *,
    worker_id: str,
    batch: int = DEFAULT_BATCH,
    lease: timedelta = DEFAULT_LEASE,
    registry: ConsumerRegistry | None = None,
    now: datetime | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> DeliveryReport:
    """Claim a batch and deliver it; what it did (``claimed == 0``: nothing was due)."""
    entry_ids = claim(session_factory, worker_id=worker_id, batch=batch, lease=lease, now=now)
    if not entry_ids:
        return DeliveryReport()
    return deliver(
        session_factory,
        entry_ids,
        worker_id=worker_id,
        registry=registry,
        now=now,
        lease=lease,
        max_attempts=max_attempts,
    )


def drain(
    session_factory: SessionFactory,
    *,
    worker_id: str,
    batch: int = DEFAULT_BATCH,
    lease: timedelta = DEFAULT_LEASE,
    registry: ConsumerRegistry | None = None,
    now: datetime | None = None,
    max_rounds: int = 1000,
) -> DeliveryReport:
    """Run rounds until nothing is due (or ``max_rounds``); the sum of what they did."""
    total = DeliveryReport()
    for _round in range(max_rounds):
        report = run_once(
            session_factory,
            worker_id=worker_id,
            batch=batch,
            lease=lease,
            registry=registry,
            now=now,
        )
        total.add(report)
        if report.claimed == 0:
            break
    return total


def default_registry() -> ConsumerRegistry:
    """The internal reactions (imported late: reactions import the services)."""
    from citygrid.exchange.reactions import REGISTRY

    return REGISTRY


def counts(session: Session) -> dict[str, int]:
    """Outbox entries per state (for operators and the CLI)."""
    return repository.outbox_counts(session)
