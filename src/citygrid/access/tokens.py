"""Short-lived bearer tokens and signed values, HMAC-SHA256 with the settings' secret.

A bearer token is ``cg1.<kind>.<id>.<expiry>.<nonce>.<signature>``:
kind ``a`` (account) or ``c`` (API client), the row's id, the expiry in Unix seconds, a
random nonce, and the base64url HMAC-SHA256 of everything before it. It names no person
and carries no scope: each request loads the account or client by primary key, so a
disabled account or a revoked client stops at once, and a changed scope applies at once.

Each use of the secret key has its own derived key (``purpose``), so a value signed for one
use (say, the sign-in form's CSRF cookie) can never pass as another (a bearer token).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Literal

TOKEN_PREFIX = "cg1"  # noqa: S105 - a format tag, not a secret
TokenKind = Literal["account", "client"]
_KIND_CODES: dict[str, TokenKind] = {"a": "account", "c": "client"}
_CODES_OF_KIND = {kind: code for code, kind in _KIND_CODES.items()}


def derive_key(secret_key: str, purpose: str) -> bytes:
    """A key for one use of the secret key."""
    return hmac.new(secret_key.encode(), f"citygrid/{purpose}".encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(secret_key: str, purpose: str, message: str) -> str:
    """The base64url HMAC-SHA256 of ``message`` under the purpose's key."""
    key = derive_key(secret_key, purpose)
    return _b64(hmac.new(key, message.encode(), hashlib.sha256).digest())


def signature_matches(secret_key: str, purpose: str, message: str, signature: str) -> bool:
    """True when ``signature`` is the signature of ``message`` (constant-time)."""
    return hmac.compare_digest(sign(secret_key, purpose, message), signature)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What a valid bearer token says: who (kind and row id) and until when."""

    kind: TokenKind
    subject_id: int
    expires_at: int


def issue_token(secret_key: str, *, kind: TokenKind, subject_id: int, ttl_seconds: int) -> str:
    """A signed bearer token for an account or an API client."""
    expires_at = int(time.time()) + ttl_seconds
    body = ".".join(
        (TOKEN_PREFIX, _CODES_OF_KIND[kind], str(subject_id), str(expires_at), secrets.token_hex(6))
    )
    return f"{body}.{sign(secret_key, 'access-token', body)}"


def read_token(secret_key: str, token: str, *, now: float | None = None) -> TokenClaims | None:
    """The claims of a genuine, unexpired token; None for anything else (forged, expired,
    malformed). The signature is checked before anything in the token is believed."""
    if len(token) > 200:
        return None
    body, _, signature = token.rpartition(".")
    if not body or not signature_matches(secret_key, "access-token", body, signature):
        return None
    parts = body.split(".")
    if len(parts) != 5 or parts[0] != TOKEN_PREFIX or parts[1] not in _KIND_CODES:
        return None
    try:
        subject_id, expires_at = int(parts[2]), int(parts[3])
    except ValueError:
        return None
    if expires_at <= (time.time() if now is None else now):
        return None
    return TokenClaims(kind=_KIND_CODES[parts[1]], subject_id=subject_id, expires_at=expires_at)


def new_client_secret() -> str:
    """A random API client secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex of a session token: the database stores only this."""
    return hashlib.sha256(token.encode()).hexdigest()
