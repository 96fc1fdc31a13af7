"""Shapes of the access log's JSON API. Hashes, keys and signatures are standard base64."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PublicKeyRead(BaseModel):
    """A public key that signs (or signed) checkpoints."""

    key_id: str = Field(description="First 8 bytes of SHA-256 of the raw key, hex")
    public_key: str = Field(description="The raw 32-byte Ed25519 public key, base64")
    pem: str = Field(description="The same key as PEM (SubjectPublicKeyInfo)")


class PublishedKeys(PublicKeyRead):
    """The log's current public key (its fields at the top level), the keys retired by
    rotations, and the log's name as its checkpoints carry it."""

    algorithm: str = "Ed25519"
    origin: str
    retired: list[PublicKeyRead]


class CheckpointOut(BaseModel):
    """A signed tree head. ``note`` is the signed text:
    ``origin\\nsize\\nbase64 root\\nUTC time\\n``; ``signature`` is Ed25519 over its UTF-8."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    tree_size: int
    root_hash: str
    created_at: datetime
    key_id: str
    note: str
    signature: str


class CheckpointList(BaseModel):
    """Checkpoints, newest first; pass ``next_before_id`` as ``before_id`` for the next page."""

    items: list[CheckpointOut]
    next_before_id: int | None


class ProofOut(BaseModel):
    """An RFC 6962 inclusion proof of an entry against a signed checkpoint.

    leaf hash = SHA-256(0x00 || UTF-8 of ``canonical_entry``); the audit path runs from the
    leaf upwards; the root it gives must equal the one in the checkpoint's signed note.
    """

    model_config = ConfigDict(from_attributes=True)

    entry_id: int
    leaf_index: int
    tree_size: int
    leaf_hash: str
    canonical_entry: str
    audit_path: list[str]
    checkpoint: CheckpointOut


class EntryOut(BaseModel):
    """An entry of the access log. ``subjects`` are persons' opaque refs; ``position`` is its
    place in the Merkle tree (null until the sequencer has placed it)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    created_at: datetime
    actor: str
    role: str
    department: str | None
    scope: list[str]
    purpose: str | None
    action: str
    outcome: str
    subjects: list[str]
    fields: list[str]
    request_id: str | None
    client_address: str | None
    detail: dict[str, Any] | None
    leaf_hash: str
    position: int | None


class EntryList(BaseModel):
    """Entries newest first; pass ``next_before_id`` as ``before_id`` for the next page."""

    items: list[EntryOut]
    next_before_id: int | None
    limit: int
