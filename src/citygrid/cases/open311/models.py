"""Tables of the Open311 door: the API keys of client applications, and what an Open311
client sent with a request beyond the case itself (token, attributes, media link, device).

A key is stored as the SHA-256 of its text: keys are 256-bit random strings, so a fast hash
is safe and lets a request find its key by an indexed lookup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from citygrid.cases.models import UtcDateTime
from citygrid.kit.models import Base, BigId, utcnow


class Open311Key(Base):
    """An API key of a client application (a city app, a mini program), owned by a
    department, which answers for what the application files."""

    __tablename__ = "open311_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The first characters of the key, shown in lists and used to revoke it.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    department: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Open311Request(Base):
    """The Open311 side of a case filed through ``POST requests``."""

    __tablename__ = "open311_requests"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    # Opaque; answers GET tokens/{token} with the case's service_request_id.
    token: Mapped[str] = mapped_column(String(24), unique=True)
    # None for the demo key.
    key_id: Mapped[int | None] = mapped_column(ForeignKey("open311_keys.id"), index=True)
    # attribute code -> value (a list for multivaluelist), as validated.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # A link to a photo somewhere else: stored, never fetched.
    media_url: Mapped[str | None] = mapped_column(String(1000))
    device_id: Mapped[str | None] = mapped_column(String(64))
    account_id: Mapped[str | None] = mapped_column(String(64))
    # Personal data of the reporter (with the case's contact name and phone): never returned.
    reporter_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
