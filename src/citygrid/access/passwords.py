"""Password and client-secret hashing with argon2id (argon2-cffi).

The cost parameters come from the settings, so raising them later needs no migration: a hash
made with older parameters still verifies, and is replaced at the next successful sign-in.
"""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from citygrid.kit.settings import Settings


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def password_hasher(settings: Settings) -> PasswordHasher:
    """The argon2id hasher for the settings' cost parameters."""
    return _hasher(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )


def hash_password(settings: Settings, password: str) -> str:
    """An argon2id hash (PHC string, salt included) of a password or client secret."""
    return password_hasher(settings).hash(password)


def verify_password(settings: Settings, password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; never raises on a bad hash."""
    try:
        return password_hasher(settings).verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(settings: Settings, password_hash: str) -> bool:
    """True when the hash was made with other parameters than the settings' current ones."""
    try:
        return password_hasher(settings).check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


@lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash("citygrid: no such account")


def verify_dummy(settings: Settings, password: str) -> None:
    """Spend the time of one verification when there is no account to verify against, so
    the answer's timing does not tell whether a user name exists."""
    dummy = _dummy_hash(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
    )
    verify_password(settings, dummy, password)
