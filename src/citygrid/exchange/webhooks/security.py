"""The webhooks' safety: callback URLs checked against server-side request forgery, signing
secrets encrypted at rest, and the signature every delivery carries.

- **Callback URLs** must be ``http`` or ``https`` with a host and no user name or password.
  Unless ``CITYGRID_WEBHOOK_ALLOW_PRIVATE_CALLBACKS`` (default: only in demo mode), every
  address the host resolves to must be a public one: loopback, private (RFC 1918, unique
  local), link-local (cloud metadata at 169.254.169.254), shared, multicast, reserved and
  unspecified addresses are refused, at registration and again before each round of sending
  (the answer is cached for ``RESOLVE_TTL`` seconds). Redirects are never followed.
- **Secrets** are encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key derived with
  HKDF-SHA256 from ``CITYGRID_SECRET_KEY``; changing that key makes stored secrets
  unreadable (subscribers then register again). A secret is never logged or shown.
- **Signature**: ``X-Citygrid-Signature: sha256=HEX`` with HEX = HMAC-SHA256(secret,
  timestamp + "." + body), the timestamp (Unix seconds) in ``X-Citygrid-Timestamp``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import socket
import threading
import time
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from citygrid.kit.errors import ValidationFailed
from citygrid.kit.i18n import _

MAX_URL_LENGTH = 2000
RESOLVE_TTL = 60.0  # seconds an address check of a host is trusted

SIGNATURE_HEADER = "X-Citygrid-Signature"
TIMESTAMP_HEADER = "X-Citygrid-Timestamp"
DELIVERY_HEADER = "X-Citygrid-Delivery"
TOPIC_HEADER = "X-Citygrid-Topic"
ATTEMPT_HEADER = "X-Citygrid-Attempt"


class CallbackRefused(Exception):
    """The callback's address may not be called; ``reason`` is a short code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _bad_url(reason: str) -> ValidationFailed:
    return ValidationFailed.one("callback_url", reason)


def check_url_shape(url: str) -> tuple[str, str, int]:
    """The scheme, host and port of a well-formed callback URL; 422 naming ``callback_url``
    otherwise."""
    if not url or len(url) > MAX_URL_LENGTH:
        raise _bad_url(_("must be a URL of at most %(n)d characters") % {"n": MAX_URL_LENGTH})
    if any(ch.isspace() for ch in url) or not url.isascii():
        raise _bad_url(_("must not contain spaces or non-ASCII characters"))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise _bad_url(_("is not a valid URL")) from None
    if parts.scheme not in ("http", "https"):
        raise _bad_url(_("must use http or https"))
    if not parts.hostname:
        raise _bad_url(_("must name a host"))
    if parts.username is not None or parts.password is not None:
        raise _bad_url(_("must not contain a user name or password"))
    if parts.fragment:
        raise _bad_url(_("must not contain a fragment (#...)"))
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(ip.is_global) and not ip.is_multicast


def check_address(host: str, port: int) -> None:
    """Refuse a host that does not resolve, or resolves to any non-public address."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise CallbackRefused("unresolvable") from None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses:
        raise CallbackRefused("unresolvable")
    if not all(_is_public(address) for address in addresses):
        raise CallbackRefused("private_address")


def check_callback(url: str, *, allow_private: bool) -> None:
    """A callback URL fit to register: well formed and, unless private addresses are allowed,
    resolving to public addresses only; 422 naming ``callback_url`` otherwise."""
    _scheme, host, port = check_url_shape(url)
    if allow_private:
        return
    try:
        check_address(host, port)
    except CallbackRefused as refused:
        if refused.reason == "unresolvable":
            raise _bad_url(_("the host does not resolve")) from None
        raise _bad_url(
            _("points at a private, loopback or link-local address, which is not allowed")
        ) from None


class AddressGuard:
    """Checks callback hosts before sending, remembering each answer for ``RESOLVE_TTL``."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._answers: dict[tuple[str, int], tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def refusal(self, url: str) -> str | None:
        """None when the URL may be called, else the reason it may not."""
        try:
            _scheme, host, port = check_url_shape(url)
        except ValidationFailed:
            return "bad_url"
        if self.allow_private:
            return None
        key = (host, port)
        now = time.monotonic()
        with self._lock:
            cached = self._answers.get(key)
        if cached is not None and now - cached[0] < RESOLVE_TTL:
            return cached[1]
        try:
            check_address(host, port)
            answer = None
        except CallbackRefused as refused:
            answer = refused.reason
        with self._lock:
            self._answers[key] = (now, answer)
        return answer


# ----------------------------------------------------------------------------- secrets


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"citygrid webhook secrets v1"
    ).derive(secret_key.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt_secret(secret: str, *, secret_key: str) -> str:
    """A subscriber's signing secret, encrypted for storage."""
    return _fernet(secret_key).encrypt(secret.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str, *, secret_key: str) -> str:
    """The signing secret back; ValueError when the key has changed since it was stored."""
    try:
        return _fernet(secret_key).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        raise ValueError("the webhook secret cannot be decrypted with this key") from None


# ----------------------------------------------------------------------------- signing


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The header value: ``sha256=`` + HMAC-SHA256(secret, timestamp + "." + body) in hex."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, *, timestamp: str, body: bytes, header: str, tolerance: float = 300.0
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        age = abs(time.time() - int(timestamp))
    except ValueError:
        return False
    return age <= tolerance and hmac.compare_digest(signature(secret, timestamp, body), header)
