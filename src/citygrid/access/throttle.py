"""Repeated sign-in failures slow down, then lock, an account name and a source address.

Two keys are counted per attempt: the subject (``account:<username>`` or
``client:<client_id>``, whether or not it exists, so the answers never tell) and the
source (``address:<ip>``). Rules, all from the settings:

- Failures are counted until the key has been quiet for ``signin_window_minutes`` (15):
  failures spaced less than that apart keep adding up, so slow guessing gains nothing.
- From ``signin_slowdown_after`` (3) failures on, the subject's next attempt must wait
  2^(n-3) s after its last failure (1 s, 2 s, 4 s, ...). An early attempt is refused with
  the time left (HTTP 429 + Retry-After) and not evaluated: the server never sleeps.
- ``signin_account_lock_after`` (10) failures lock the subject, and
  ``signin_address_lock_after`` (30) failures lock the address, for ``signin_lock_minutes``
  (15). A locked key refuses even the right password.
- A success forgets the subject's failures (the address keeps its count).

An attempt locks both rows from its start to its commit (PostgreSQL ``FOR UPDATE``; SQLite's
write lock), so parallel guesses against one name are evaluated one after another and
cannot all slip through on the same count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from citygrid.access import auth_repository as repository
from citygrid.access.auth_repository import AnyRow
from citygrid.kit.settings import Settings

KEY_MAX_LENGTH = 120


def as_utc(moment: datetime) -> datetime:
    """A stored time as aware UTC (SQLite hands back naive datetimes)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def account_key(username: str) -> str:
    """The throttle key of a user name (normalised the way sign-in looks it up)."""
    return f"account:{username}"[:KEY_MAX_LENGTH]


def client_key(client_id: str) -> str:
    """The throttle key of an API client id."""
    return f"client:{client_id}"[:KEY_MAX_LENGTH]


def address_key(address: str | None) -> str:
    """The throttle key of a source address."""
    return f"address:{address or 'unknown'}"[:KEY_MAX_LENGTH]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One sign-in attempt's throttle keys, locked for the rest of the transaction."""

    subject_key: str
    address_key: str
    now: datetime

    @property
    def keys(self) -> tuple[str, str]:
        """Both keys."""
        return (self.subject_key, self.address_key)


@dataclass(frozen=True, slots=True)
class _Counter:
    failures: int
    first_failure_at: datetime
    last_failure_at: datetime
    locked_until: datetime | None


def _counter(row: AnyRow | None, settings: Settings, now: datetime) -> _Counter:
    """The key's counter as it stands at ``now`` (reset after a quiet window)."""
    if row is None:
        return _Counter(0, now, now, None)
    locked_until = as_utc(row.locked_until) if row.locked_until is not None else None
    if locked_until is not None and locked_until <= now:
        locked_until = None
    last = as_utc(row.last_failure_at)
    quiet = now - last >= timedelta(minutes=settings.signin_window_minutes)
    if locked_until is None and quiet:
        return _Counter(0, now, now, None)
    return _Counter(row.failures, as_utc(row.first_failure_at), last, locked_until)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, math.ceil((moment - now).total_seconds()))


def begin(
    session: Session, settings: Settings, *, subject_key: str, address_key: str, now: datetime
) -> tuple[Attempt, int | None]:
    """Lock the attempt's throttle rows; the seconds to wait when it must be refused now."""
    attempt = Attempt(subject_key=subject_key, address_key=address_key, now=now)
    repository.ensure_throttle_rows(session, attempt.keys, now)
    rows = repository.lock_throttle_rows(session, attempt.keys)
    waits: list[int] = []
    for key in attempt.keys:
        counter = _counter(rows.get(key), settings, now)
        if counter.locked_until is not None:
            waits.append(_seconds_until(counter.locked_until, now))
        elif key == subject_key and counter.failures >= settings.signin_slowdown_after:
            delay = 2 ** (counter.failures - settings.signin_slowdown_after)
            allowed_at = counter.last_failure_at + timedelta(seconds=delay)
            if now < allowed_at:
                waits.append(_seconds_until(allowed_at, now))
    if waits:
        repository.delete_empty_throttles(session, attempt.keys)
        return attempt, max(waits)
    return attempt, None


def record_failure(session: Session, settings: Settings, attempt: Attempt) -> None:
    """Count a failed attempt on both keys, locking a key that reached its threshold."""
    rows = repository.lock_throttle_rows(session, attempt.keys)
    now = attempt.now
    lock_until = now + timedelta(minutes=settings.signin_lock_minutes)
    for key in attempt.keys:
        counter = _counter(rows.get(key), settings, now)
        failures = counter.failures + 1
        threshold = (
            settings.signin_account_lock_after
            if key == attempt.subject_key
            else settings.signin_address_lock_after
        )
        locked_until = counter.locked_until
        if failures >= threshold:
            locked_until = lock_until
        repository.save_throttle(
            session,
            key,
            failures=failures,
            first_failure_at=counter.first_failure_at,
            last_failure_at=now,
            locked_until=locked_until,
        )


def record_success(session: Session, attempt: Attempt) -> None:
    """Forget the subject's failures; keep the address's count."""
    repository.delete_throttle(session, attempt.subject_key)
    repository.delete_empty_throttles(session, attempt.keys)


def end_without_verdict(session: Session, attempt: Attempt) -> None:
    """An attempt that neither failed nor succeeded (a second factor is asked for next)."""
    repository.delete_empty_throttles(session, attempt.keys)


def purge(session: Session, settings: Settings, *, now: datetime) -> int:
    """Delete counters that have gone quiet and hold no lock (housekeeping)."""
    quiet_since = now - timedelta(minutes=settings.signin_window_minutes)
    return repository.purge_throttles(session, quiet_since=quiet_since, now=now)


def take_slot(
    session: Session, *, key: str, limit: int, window: timedelta, now: datetime
) -> int | None:
    """Count one event (a public report) on a key, at most ``limit`` per fixed ``window``;
    when the limit is reached nothing is counted and the seconds to wait are returned.

    Uses the sign-in throttle's table and locks (one row per key, locked to the end of the
    transaction), so parallel submissions from one address are counted one after another.
    A full window is held as a lock, which ``purge`` keeps until it runs out.
    """
    key = key[:KEY_MAX_LENGTH]
    repository.ensure_throttle_rows(session, [key], now)
    row = repository.lock_throttle_rows(session, [key]).get(key)
    count = row.failures if row is not None else 0
    started = as_utc(row.first_failure_at) if row is not None and count else now
    if now - started >= window:
        count, started = 0, now
    if count >= limit:
        return _seconds_until(started + window, now)
    count += 1
    repository.save_throttle(
        session,
        key,
        failures=count,
        first_failure_at=started,
        last_failure_at=now,
        locked_until=started + window if count >= limit else None,
    )
    return None
