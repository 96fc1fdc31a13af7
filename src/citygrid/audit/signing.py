"""Ed25519 keys and the signed checkpoint note.

A checkpoint note is plain text an outsider can check with any Ed25519 library::

    <origin>\\n<tree size>\\n<base64 root hash>\\n<UTC time, ISO 8601>\\n

signed as UTF-8 bytes. The public key is published at ``GET /api/v1/audit/public-key``.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

from citygrid.kit.settings import Settings


class SigningKeyMissing(RuntimeError):
    """No audit signing key is configured (and this is not the demo)."""


@dataclass(frozen=True)
class SigningKey:
    """The private key that signs checkpoints, with its public half and id."""

    private: Ed25519PrivateKey

    @property
    def public_bytes(self) -> bytes:
        """The raw 32-byte public key."""
        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> str:
        """A short id of the public key: the first 8 bytes of its SHA-256, in hex."""
        return key_id(self.public_bytes)

    def sign(self, message: bytes) -> bytes:
        """An Ed25519 signature over ``message``."""
        return self.private.sign(message)


def key_id(public_key: bytes) -> str:
    """The id of a raw public key."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def _from_seed_b64(seed_b64: str) -> SigningKey:
    seed = base64.b64decode(seed_b64.strip(), validate=True)
    if len(seed) != 32:
        raise ValueError("the audit signing key must be 32 bytes (base64)")
    return SigningKey(Ed25519PrivateKey.from_private_bytes(seed))


def generate_seed_b64() -> str:
    """A new random private key, base64 of its 32-byte seed."""
    return base64.b64encode(os.urandom(32)).decode()


def load_signing_key(settings: Settings) -> SigningKey:
    """The configured key; in demo mode one is generated into the key file when missing."""
    if settings.audit_signing_key:
        return _from_seed_b64(settings.audit_signing_key)
    path: Path = settings.audit_signing_key_file
    if path.exists():
        return _from_seed_b64(path.read_text())
    if not settings.demo_mode:
        raise SigningKeyMissing(
            "set CITYGRID_AUDIT_SIGNING_KEY or CITYGRID_AUDIT_SIGNING_KEY_FILE "
            "(generate one with `citygrid audit keygen`)"
        )
    write_key_file(path, generate_seed_b64(), exist_ok=True)
    return _from_seed_b64(path.read_text())


def write_key_file(path: Path, seed_b64: str, *, exist_ok: bool = False) -> bool:
    """Create a private key file (mode 0600) whole or not at all; False if it already existed.

    The key is written to a temporary file that is then hard-linked into place, so a process
    racing to create the same file never reads a half-written key.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as key_file:
            key_file.write(seed_b64 + "\n")
        os.link(temporary, path)
    except FileExistsError:
        if not exist_ok:
            raise
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


def signing_key_from_seed(seed_b64: str) -> SigningKey:
    """The signing key of a base64 32-byte seed (what a key file holds)."""
    return _from_seed_b64(seed_b64)


def public_key_pem(public_key: bytes) -> str:
    """A raw Ed25519 public key as PEM (SubjectPublicKeyInfo), for tools such as openssl."""
    loaded = Ed25519PublicKey.from_public_bytes(public_key)
    return loaded.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def parse_public_key(text: str) -> bytes:
    """A raw 32-byte Ed25519 public key from base64 (of the raw key) or PEM; ValueError else."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        loaded = load_pem_public_key(text.encode())
        if not isinstance(loaded, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return loaded.public_bytes(Encoding.Raw, PublicFormat.Raw)
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("not base64 or PEM") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return raw


def published_public_keys(settings: Settings) -> list[bytes]:
    """The public keys checkpoints may be signed with: the current key's, then retired ones."""
    keys = [load_signing_key(settings).public_bytes]
    for retired in settings.audit_retired_public_keys:
        raw = parse_public_key(retired)
        if raw not in keys:
            keys.append(raw)
    return keys


def checkpoint_note(origin: str, tree_size: int, root_hash: bytes, created_at: datetime) -> str:
    """The text that a checkpoint signs."""
    stamp = created_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode()}\n{stamp}\n"


def verify_note(public_key: bytes, note: str, signature: bytes) -> bool:
    """True when ``signature`` is the key's signature over ``note``."""
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, note.encode())
    except InvalidSignature:
        return False
    return True
