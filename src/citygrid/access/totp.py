"""TOTP second factor (RFC 6238 via pyotp): who needs one, and checking a code.

Rule: an account needs a second factor when it may reveal personal data across a district or
wider, i.e. one of its scope prefixes has 6 digits or fewer (a district or the city) and its
role's (or department's) grant in the policy names anything it may reveal.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from datetime import datetime

import pyotp

from citygrid.access.policy import PolicyError, default_policy

ISSUER = "citygrid"
STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
"""Codes of the previous and the next 30-second step are accepted too (clock drift)."""

WIDE_SCOPE_DIGITS = 6


def totp_required(role: str, department: str | None, scopes: Iterable[str]) -> bool:
    """True when the account may reveal personal data across a district or wider."""
    if not any(len(prefix) <= WIDE_SCOPE_DIGITS for prefix in scopes):
        return False
    try:
        grant = default_policy().grant(role, department)
    except PolicyError:
        # A role the policy does not know reveals nothing (the gateway refuses it anyway).
        return False
    return bool(grant.reveal)


def new_secret() -> str:
    """A fresh random base32 secret (160 bits)."""
    return pyotp.random_base32(32)


def provisioning_uri(secret: str, username: str) -> str:
    """The ``otpauth://`` URI an authenticator app scans (as a QR code) or imports."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(
        name=username, issuer_name=ISSUER
    )


def time_step(now: datetime) -> int:
    """The TOTP time step (counter) of an instant."""
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    """The code of a time step (tests and the demo use it)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def matching_step(secret: str, code: str, *, now: datetime) -> int | None:
    """The step (within the allowed drift) whose code is ``code``, or None.

    The caller must still refuse a step at or before the account's last accepted one.
    """
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = time_step(now)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)
    found = None
    # Compare against every candidate (no early exit): the time taken says nothing.
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            found = step
    return found
