"""Tables of the access domain: accounts, web sessions, sign-in throttling, API clients
and the consent store."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citygrid.kit.models import Base, TimestampMixin, str_enum, utcnow


class Role(enum.StrEnum):
    """What an account does; the policy file says what each role may see."""

    GRID_WORKER = "grid_worker"
    COMMUNITY_OFFICIAL = "community_official"
    STREET_OFFICIAL = "street_official"
    DISTRICT_OFFICIAL = "district_official"
    CITY_OFFICIAL = "city_official"
    DISPATCHER = "dispatcher"
    DEPARTMENT_OFFICER = "department_officer"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Account(TimestampMixin, Base):
    """A person who signs in: an official, a grid worker, an auditor, an administrator."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    role: Mapped[Role] = mapped_column(str_enum(Role, 32))
    department: Mapped[str | None] = mapped_column(String(40))
    # Territorial code prefixes: the account sees records whose grid code starts with one.
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The TOTP time step of the last accepted code: a code is accepted only for a later step,
    # so a code seen over a shoulder or in a log cannot be replayed within its window.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    last_sign_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its hash is stored."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client_address: Mapped[str | None] = mapped_column(String(64))


class SignInThrottle(Base):
    """Failed sign-ins per account name or source address: slowed, then locked."""

    __tablename__ = "sign_in_throttle"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)  # "account:x" / "address:y"
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ApiClient(TimestampMixin, Base):
    """A department system: client id + secret -> short-lived bearer tokens."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(200))  # argon2id
    name: Mapped[str] = mapped_column(String(100))
    department: Mapped[str] = mapped_column(String(40))
    role: Mapped[Role] = mapped_column(str_enum(Role, 32), default=Role.DEPARTMENT_OFFICER)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ConsentStatus(enum.StrEnum):
    """State of a consent; expiry is also judged from ``valid_until`` at check time."""

    ACTIVE = "active"
    REVOKED = "revoked"
    EXPIRED = "expired"


class Consent(TimestampMixin, Base):
    """A resident's consent that a department reads some field classes for a purpose."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_lookup", "person_id", "requester_department", "purpose"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id"))
    requester_department: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str] = mapped_column(String(60))
    field_classes: Mapped[list[str]] = mapped_column(JSON)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    status: Mapped[ConsentStatus] = mapped_column(
        str_enum(ConsentStatus), default=ConsentStatus.ACTIVE
    )
    obtained_via: Mapped[str] = mapped_column(String(40))  # cli / sms / portal / paper
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
