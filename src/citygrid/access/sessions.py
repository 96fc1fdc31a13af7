"""Server-side web sessions: a random token in the cookie, its SHA-256 in the database.

A session ends on sign-out, after ``session_idle_minutes`` (30) without a request, or
``session_absolute_hours`` (12) after sign-in, whichever comes first. Activity is written
at most once a minute (``TOUCH_INTERVAL``), so reading pages does not write per request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from citygrid.access import auth_repository as repository
from citygrid.access.auth_repository import AnyRow
from citygrid.access.models import WebSession
from citygrid.access.throttle import as_utc
from citygrid.access.tokens import hash_token
from citygrid.kit.db import begin_write, end_write
from citygrid.kit.models import utcnow
from citygrid.kit.settings import Settings

TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class SessionAccount:
    """A live web session and the account behind it (no secrets)."""

    token_hash: str
    csrf_token: str
    account_id: int
    username: str
    display_name: str
    role: str
    department: str | None
    scopes: tuple[str, ...]


def start_session(
    session: Session,
    settings: Settings,
    *,
    account_id: int,
    client_address: str | None,
    now: datetime | None = None,
) -> str:
    """Open a web session for an account; returns the cookie's token (shown only once)."""
    now = now or utcnow()
    # Housekeeping: the account's expired sessions go (a failed request cannot delete them).
    repository.delete_stale_web_sessions(
        session,
        account_id,
        seen_before=now - timedelta(minutes=settings.session_idle_minutes),
        created_before=now - timedelta(hours=settings.session_absolute_hours),
        now=now,
    )
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_hash=hash_token(token),
            account_id=account_id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(hours=settings.session_absolute_hours),
            client_address=(client_address or "")[:64] or None,
        )
    )
    session.flush()
    return token


def _expired(row: AnyRow, settings: Settings, now: datetime) -> bool:
    created_at = as_utc(row.created_at)
    if now >= as_utc(row.expires_at):
        return True
    # Judged from created_at too: a shorter setting also ends sessions opened before it.
    if now - created_at >= timedelta(hours=settings.session_absolute_hours):
        return True
    return now - as_utc(row.last_seen_at) >= timedelta(minutes=settings.session_idle_minutes)


def resume_session(
    session: Session, settings: Settings, *, token: str, now: datetime | None = None
) -> SessionAccount | None:
    """The live session of a cookie token, or None (unknown, expired, or account disabled).

    An expired session is deleted; a live one has its activity recorded (at most once a
    minute). Either write is committed at once, in a transaction that took SQLite's write
    lock before it (``begin_write``): after the read, a plain write would fail with
    "database is locked" whenever another connection was writing, and the request would
    otherwise hold the lock until it ends.
    """
    now = now or utcnow()
    token_hash = hash_token(token)
    row = repository.web_session_row(session, token_hash)
    if row is None:
        return None
    if row.account_disabled or _expired(row, settings, now):
        # SQLite: the row was read; a write after a read needs the write lock first.
        begin_write(session)
        repository.delete_web_session(session, token_hash)
        end_write(session)
        return None
    if now - as_utc(row.last_seen_at) >= TOUCH_INTERVAL:
        begin_write(session)
        repository.touch_web_session(session, token_hash, now)
        end_write(session)
    return SessionAccount(
        token_hash=token_hash,
        csrf_token=row.csrf_token,
        account_id=row.account_id,
        username=row.account_username,
        display_name=row.account_display_name,
        role=str(row.account_role),
        department=row.account_department,
        scopes=tuple(row.account_scopes or ()),
    )


def end_session(session: Session, *, token: str) -> None:
    """Delete the session of a cookie token (sign-out); unknown tokens are ignored."""
    repository.delete_web_session(session, hash_token(token))
