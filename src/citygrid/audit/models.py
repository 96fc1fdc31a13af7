"""Tables of the access log. The application only ever INSERTs into them.

``audit_entries`` gets one row per access, written by the request in its own transaction.
``audit_leaves`` gives entries their tree positions; only the sequencer writes it, in batches,
so transactions that commit out of order never leave a hole in a signed tree (as Trillian does).
``audit_nodes`` keeps the hashes of perfect subtrees so proofs need O(log n) lookups, and
``audit_checkpoints`` holds signed tree heads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from citygrid.kit.models import Base, BigId, utcnow


class AuditEntry(Base):
    """One access to personal data, allowed or denied."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_entries_actor_created_at", "actor", "created_at"),
        Index("ix_audit_entries_purpose_created_at", "purpose", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(40))
    department: Mapped[str | None] = mapped_column(String(40))
    scope: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str | None] = mapped_column(String(60))
    action: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(16))  # allowed / denied
    subjects: Mapped[list[str]] = mapped_column(JSON)  # opaque person refs
    fields: Mapped[list[str]] = mapped_column(JSON)  # field classes or fields revealed
    request_id: Mapped[str | None] = mapped_column(String(64))
    client_address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # SHA-256(0x00 || canonical encoding), fixed at append time.
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditSubject(Base):
    """Index from a person (opaque ref) to the entries that touched them: the citizen's view."""

    __tablename__ = "audit_subjects"

    entry_id: Mapped[int] = mapped_column(BigId, primary_key=True)
    subject: Mapped[str] = mapped_column(String(24), primary_key=True, index=True)


class AuditLeaf(Base):
    """The tree position of an entry, assigned by the sequencer."""

    __tablename__ = "audit_leaves"

    position: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    entry_id: Mapped[int] = mapped_column(BigId, unique=True)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditNode(Base):
    """Hash of the perfect subtree over leaves [node_index << level, (node_index + 1) << level)."""

    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    node_index: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class AuditCheckpoint(Base):
    """A signed tree head: size, root, time, and the Ed25519 signature over its note."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigId, index=True)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    key_id: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
