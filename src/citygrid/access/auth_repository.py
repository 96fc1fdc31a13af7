"""Every query of accounts, web sessions, API clients and the sign-in throttle.

The per-request lookups (who is behind this cookie or token) are single Core SELECTs by
primary key or by the session's token hash, returning plain rows: no ORM identity map to
go stale between requests that share a session, and one round trip per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from citygrid.access.models import Account, ApiClient, SignInThrottle, WebSession

AnyRow = Row[*tuple[Any, ...]]
"""A plain result row of any shape (read by attribute)."""

# ----------------------------------------------------------------------------- accounts

_ACCOUNT_COLUMNS = (
    Account.id,
    Account.username,
    Account.display_name,
    Account.role,
    Account.department,
    Account.scopes,
    Account.disabled,
)


def account_by_username(session: Session, username: str) -> Account | None:
    """The account with this user name (already normalised), or None."""
    return session.scalars(select(Account).where(Account.username == username)).one_or_none()


def account_by_id(session: Session, account_id: int) -> Account | None:
    """The account with this id, or None."""
    return session.get(Account, account_id)


def account_row(session: Session, account_id: int) -> AnyRow | None:
    """What a request needs of an account (no secrets), by primary key."""
    return session.execute(select(*_ACCOUNT_COLUMNS).where(Account.id == account_id)).one_or_none()


def list_accounts(session: Session) -> Sequence[Account]:
    """Every account, by user name."""
    return session.scalars(select(Account).order_by(Account.username)).all()


def accounts_by_usernames(session: Session, usernames: Sequence[str]) -> Sequence[Account]:
    """The accounts among these user names, by user name."""
    return session.scalars(
        select(Account).where(Account.username.in_(usernames)).order_by(Account.username)
    ).all()


def claim_totp_step(session: Session, account_id: int, step: int) -> bool:
    """Record ``step`` as the last used TOTP step unless that step (or a later one) was
    already used. Atomic: of two requests racing with the same code, only one wins."""
    result = session.execute(
        update(Account)
        .where(Account.id == account_id)
        .where((Account.totp_last_step.is_(None)) | (Account.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


# ----------------------------------------------------------------------------- web sessions


def web_session_row(session: Session, token_hash: str) -> AnyRow | None:
    """A web session joined with its account, by the token's hash."""
    return session.execute(
        select(
            WebSession.token_hash,
            WebSession.csrf_token,
            WebSession.created_at,
            WebSession.last_seen_at,
            WebSession.expires_at,
            *(column.label(f"account_{column.key}") for column in _ACCOUNT_COLUMNS),
        )
        .join(Account, Account.id == WebSession.account_id)
        .where(WebSession.token_hash == token_hash)
    ).one_or_none()


def touch_web_session(session: Session, token_hash: str, now: datetime) -> None:
    """Move a session's ``last_seen_at`` to ``now``."""
    session.execute(
        update(WebSession)
        .where(WebSession.token_hash == token_hash)
        .values(last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def delete_web_session(session: Session, token_hash: str) -> None:
    """Forget one web session."""
    session.execute(
        delete(WebSession)
        .where(WebSession.token_hash == token_hash)
        .execution_options(synchronize_session=False)
    )


def delete_web_sessions_of(session: Session, account_id: int) -> int:
    """Forget every web session of an account; returns how many."""
    result = session.execute(
        delete(WebSession)
        .where(WebSession.account_id == account_id)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def delete_stale_web_sessions(
    session: Session,
    account_id: int,
    *,
    seen_before: datetime,
    created_before: datetime,
    now: datetime,
) -> None:
    """Forget an account's sessions that have expired (idle, or past their lifetime)."""
    session.execute(
        delete(WebSession)
        .where(
            WebSession.account_id == account_id,
            (WebSession.last_seen_at <= seen_before)
            | (WebSession.created_at <= created_before)
            | (WebSession.expires_at <= now),
        )
        .execution_options(synchronize_session=False)
    )


# ----------------------------------------------------------------------------- API clients

_CLIENT_COLUMNS = (
    ApiClient.id,
    ApiClient.client_id,
    ApiClient.role,
    ApiClient.department,
    ApiClient.scopes,
    ApiClient.revoked_at,
)


def client_by_client_id(session: Session, client_id: str) -> ApiClient | None:
    """The API client with this client id, or None."""
    return session.scalars(select(ApiClient).where(ApiClient.client_id == client_id)).one_or_none()


def client_row(session: Session, client_pk: int) -> AnyRow | None:
    """What a request needs of an API client (no secret), by primary key."""
    return session.execute(select(*_CLIENT_COLUMNS).where(ApiClient.id == client_pk)).one_or_none()


def list_clients(session: Session) -> Sequence[ApiClient]:
    """Every API client, by client id."""
    return session.scalars(select(ApiClient).order_by(ApiClient.client_id)).all()


# ----------------------------------------------------------------------------- throttle


def ensure_throttle_rows(session: Session, keys: Sequence[str], now: datetime) -> None:
    """Create the missing throttle rows (no failures yet), leaving existing ones alone.

    Writing first takes the locks the attempt needs before anything is read: the SQLite
    write lock, and on PostgreSQL a wait on a concurrent insert of the same key.
    """
    rows = [
        {"key": key, "failures": 0, "first_failure_at": now, "last_failure_at": now}
        for key in sorted(keys)
    ]
    dialect = session.get_bind().dialect.name
    table = SignInThrottle.__table__
    assert isinstance(table, Table)  # noqa: S101 - for the type checker
    if dialect == "postgresql":
        session.execute(postgresql.insert(table).values(rows).on_conflict_do_nothing())
    else:
        session.execute(sqlite.insert(table).values(rows).on_conflict_do_nothing())


def lock_throttle_rows(session: Session, keys: Sequence[str]) -> dict[str, AnyRow]:
    """The throttle rows of these keys, locked until the transaction ends (PostgreSQL
    ``FOR UPDATE``, in key order so two attempts never deadlock; SQLite already holds its
    database-wide write lock)."""
    rows = session.execute(
        select(
            SignInThrottle.key,
            SignInThrottle.failures,
            SignInThrottle.first_failure_at,
            SignInThrottle.last_failure_at,
            SignInThrottle.locked_until,
        )
        .where(SignInThrottle.key.in_(sorted(keys)))
        .order_by(SignInThrottle.key)
        .with_for_update()
    ).all()
    return {row.key: row for row in rows}


def save_throttle(
    session: Session,
    key: str,
    *,
    failures: int,
    first_failure_at: datetime,
    last_failure_at: datetime,
    locked_until: datetime | None,
) -> None:
    """Store a throttle row's new counters."""
    session.execute(
        update(SignInThrottle)
        .where(SignInThrottle.key == key)
        .values(
            failures=failures,
            first_failure_at=first_failure_at,
            last_failure_at=last_failure_at,
            locked_until=locked_until,
        )
        .execution_options(synchronize_session=False)
    )


def delete_throttle(session: Session, key: str) -> None:
    """Forget a throttle key."""
    session.execute(
        delete(SignInThrottle)
        .where(SignInThrottle.key == key)
        .execution_options(synchronize_session=False)
    )


def delete_empty_throttles(session: Session, keys: Sequence[str]) -> None:
    """Forget the keys among these that count no failure."""
    session.execute(
        delete(SignInThrottle)
        .where(SignInThrottle.key.in_(keys), SignInThrottle.failures == 0)
        .execution_options(synchronize_session=False)
    )


def purge_throttles(session: Session, *, quiet_since: datetime, now: datetime) -> int:
    """Delete throttle rows with no failure since ``quiet_since`` and no running lock."""
    result = session.execute(
        delete(SignInThrottle)
        .where(
            SignInThrottle.last_failure_at < quiet_since,
            (SignInThrottle.locked_until.is_(None)) | (SignInThrottle.locked_until < now),
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
