"""Accounts and API clients: creating them with their territorial scope, and signing in.

Sign-in answers the same for an unknown name, a wrong password, a disabled account and a
locked one (``INVALID`` or ``THROTTLED``), and spends one argon2id verification either way,
so neither the answer nor its timing tells whether a user name exists.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from citygrid.access import auth_repository as repository
from citygrid.access import passwords, throttle, totp
from citygrid.access.models import Account, ApiClient, Role
from citygrid.access.tokens import new_client_secret, read_token
from citygrid.kit.actor import Actor
from citygrid.kit.errors import Conflict, NotFound, ValidationFailed
from citygrid.kit.i18n import _
from citygrid.kit.models import utcnow
from citygrid.kit.settings import DEMO_SECRET, Settings
from citygrid.territory.models import Level

logger = logging.getLogger("citygrid.access")

DEPARTMENTS = (
    "public-security",
    "family-planning",
    "civil-affairs",
    "social-security",
    "rental-housing",
    "housing-construction",
    "water-affairs",
    "market-regulation",
    "urban-management",
    "landscaping",
    "power-supply",
    "transport",
)
"""Department slugs: a department officer's and an API client's ``department``. Every
department the case catalogue routes cases to is one (tests/cases/test_departments.py), so
each can have officers who handle them."""

ROLE_SCOPE_LEVELS: dict[Role, tuple[Level, ...]] = {
    Role.GRID_WORKER: (Level.GRID,),
    Role.COMMUNITY_OFFICIAL: (Level.COMMUNITY,),
    Role.STREET_OFFICIAL: (Level.STREET,),
    Role.DISTRICT_OFFICIAL: (Level.DISTRICT,),
    Role.CITY_OFFICIAL: (Level.CITY,),
    Role.DISPATCHER: (Level.DISTRICT,),
    Role.DEPARTMENT_OFFICER: tuple(Level),
    Role.AUDITOR: (Level.CITY, Level.DISTRICT),
    Role.ADMIN: (Level.CITY, Level.DISTRICT),
}
"""The levels of territorial unit each role's scope may name."""

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
PASSWORD_MIN_LENGTH = 10
PASSWORD_MAX_LENGTH = 1024
MAX_SCOPES = 50


def role_label(role: str) -> str:
    """A role's name for people, in the current locale."""
    labels: dict[str, str] = {
        Role.GRID_WORKER: _("Grid worker"),
        Role.COMMUNITY_OFFICIAL: _("Community official"),
        Role.STREET_OFFICIAL: _("Street official"),
        Role.DISTRICT_OFFICIAL: _("District official"),
        Role.CITY_OFFICIAL: _("City official"),
        Role.DISPATCHER: _("Command centre dispatcher"),
        Role.DEPARTMENT_OFFICER: _("Department officer"),
        Role.AUDITOR: _("Auditor"),
        Role.ADMIN: _("Administrator"),
    }
    return labels.get(role, role)


def level_label(level: str) -> str:
    """A territorial level's name for people, in the current locale."""
    labels: dict[str, str] = {
        Level.CITY: _("city"),
        Level.DISTRICT: _("district"),
        Level.STREET: _("street"),
        Level.COMMUNITY: _("community"),
        Level.GRID: _("grid"),
    }
    return labels.get(level, level)


def normalise_name(name: str) -> str:
    """A user name or client id as stored and looked up: trimmed, lower case."""
    return name.strip().lower()


# ============================================================================ validation


def _check_name(field: str, name: str) -> str:
    name = normalise_name(name)
    if not NAME_PATTERN.fullmatch(name):
        raise ValidationFailed.one(
            field,
            _(
                "2 to 64 characters: lower-case letters, digits, '.', '-' or '_', "
                "starting with a letter or digit"
            ),
        )
    return name


def check_password(settings: Settings, password: str, *, field: str = "password") -> None:
    """Refuse a password that is too short or too long, or the demo password outside the demo."""
    if len(password) < PASSWORD_MIN_LENGTH:
        raise ValidationFailed.one(
            field, _("at least {n} characters").format(n=PASSWORD_MIN_LENGTH)
        )
    if len(password) > PASSWORD_MAX_LENGTH:
        raise ValidationFailed.one(field, _("at most {n} characters").format(n=PASSWORD_MAX_LENGTH))
    if password == DEMO_SECRET and not settings.demo_mode:
        raise ValidationFailed.one(
            field, _("the demo password is allowed only in demo mode; choose another")
        )


def _check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationFailed.one(
            "role", _("one of: {roles}").format(roles=", ".join(member.value for member in Role))
        ) from None


def _check_department(role: Role, department: str | None) -> str | None:
    if role is Role.DEPARTMENT_OFFICER:
        if not department:
            raise ValidationFailed.one("department", _("a department officer needs a department"))
    elif department:
        raise ValidationFailed.one("department", _("only department officers have a department"))
    if department and department not in DEPARTMENTS:
        raise ValidationFailed.one(
            "department", _("one of: {departments}").format(departments=", ".join(DEPARTMENTS))
        )
    return department or None


def check_scopes(session: Session, *, role: Role, scopes: Iterable[str]) -> list[str]:
    """The scope prefixes, each checked to be an existing unit of a level the role may have."""
    from citygrid.territory.service import get_unit

    allowed_levels = ROLE_SCOPE_LEVELS[role]
    checked: list[str] = []
    for raw in scopes:
        code = raw.strip()
        if not (code.isascii() and code.isdigit() and len(code) in (6, 9, 12, 15)):
            reason = _("{code}: a territorial code has 6, 9, 12 or 15 digits")
            raise ValidationFailed.one("scopes", reason.format(code=code))
        try:
            unit = get_unit(session, code=code)
        except NotFound:
            raise ValidationFailed.one(
                "scopes", _("{code}: no territorial unit has this code").format(code=code)
            ) from None
        if unit.level not in allowed_levels:
            raise ValidationFailed.one(
                "scopes",
                _("{code} is a {level}; the scope of a {role} is: {levels}").format(
                    code=code,
                    level=level_label(unit.level),
                    role=role_label(role),
                    levels=", ".join(level_label(level) for level in allowed_levels),
                ),
            )
        if code not in checked:
            checked.append(code)
    if not checked:
        raise ValidationFailed.one("scopes", _("at least one territorial code"))
    if len(checked) > MAX_SCOPES:
        raise ValidationFailed.one("scopes", _("at most {n} codes").format(n=MAX_SCOPES))
    return checked


# ============================================================================ accounts


@dataclass(frozen=True, slots=True)
class CreatedAccount:
    """A new account, with its TOTP secret when it needs a second factor (shown once)."""

    account: Account
    totp_secret: str | None


def create_account(
    session: Session,
    actor: Actor,
    *,
    settings: Settings,
    username: str,
    password: str,
    role: str,
    scopes: Iterable[str],
    department: str | None = None,
    display_name: str | None = None,
    password_hash: str | None = None,
) -> CreatedAccount:
    """Create an account; a TOTP secret is made when the account needs a second factor.

    ``password_hash`` may carry an argon2id hash of ``password`` made by
    ``passwords.hash_password`` (to hash one shared password once, as the demo does).
    """
    name = _check_name("username", username)
    checked_role = _check_role(role)
    checked_department = _check_department(checked_role, department)
    checked_scopes = check_scopes(session, role=checked_role, scopes=scopes)
    check_password(settings, password)
    if password.lower() == name:
        raise ValidationFailed.one("password", _("must not be the user name"))
    shown_name = (display_name or "").strip() or name
    if len(shown_name) > 100:
        raise ValidationFailed.one("display_name", _("at most {n} characters").format(n=100))
    if repository.account_by_username(session, name) is not None:
        raise Conflict(
            _("An account named {username} exists already.").format(username=name),
            details=[{"field": "username", "reason": _("taken")}],
        )
    secret = (
        totp.new_secret()
        if totp.totp_required(checked_role, checked_department, checked_scopes)
        else None
    )
    account = Account(
        username=name,
        display_name=shown_name,
        password_hash=password_hash or passwords.hash_password(settings, password),
        role=checked_role,
        department=checked_department,
        scopes=checked_scopes,
        totp_secret=secret,
        disabled=False,
    )
    session.add(account)
    session.flush()
    logger.info("account %s created by %s (role %s)", name, actor.name, checked_role.value)
    return CreatedAccount(account=account, totp_secret=secret)


def _account_or_404(session: Session, username: str) -> Account:
    account = repository.account_by_username(session, normalise_name(username))
    if account is None:
        raise NotFound(_("There is no account with this user name."))
    return account


def disable_account(session: Session, actor: Actor, *, username: str) -> Account:
    """Disable an account and end its web sessions; its bearer tokens stop at once too."""
    account = _account_or_404(session, username)
    account.disabled = True
    session.flush()
    repository.delete_web_sessions_of(session, account.id)
    logger.info("account %s disabled by %s", account.username, actor.name)
    return account


def enable_account(session: Session, actor: Actor, *, username: str) -> Account:
    """Enable a disabled account again."""
    account = _account_or_404(session, username)
    account.disabled = False
    session.flush()
    logger.info("account %s enabled by %s", account.username, actor.name)
    return account


def reset_totp(session: Session, actor: Actor, *, username: str) -> str:
    """Give an account a new TOTP secret (lost phone); returns it, to be shown once."""
    account = _account_or_404(session, username)
    secret = totp.new_secret()
    account.totp_secret = secret
    account.totp_last_step = None
    session.flush()
    repository.delete_web_sessions_of(session, account.id)
    logger.info("TOTP secret of %s reset by %s", account.username, actor.name)
    return secret


def list_accounts(session: Session) -> Sequence[Account]:
    """Every account, by user name."""
    return repository.list_accounts(session)


def needs_totp(account: Account) -> bool:
    """True when this account must give a TOTP code to sign in."""
    return totp.totp_required(account.role, account.department, account.scopes)


# ============================================================================ API clients


@dataclass(frozen=True, slots=True)
class CreatedClient:
    """A new API client and its secret (shown once; only its hash is stored)."""

    client: ApiClient
    secret: str


def create_client(
    session: Session,
    actor: Actor,
    *,
    settings: Settings,
    client_id: str,
    department: str,
    scopes: Iterable[str],
    name: str | None = None,
    secret: str | None = None,
    secret_hash: str | None = None,
) -> CreatedClient:
    """Register a department system; a random secret is made unless one is given."""
    cid = _check_name("client_id", client_id)
    checked_department = _check_department(Role.DEPARTMENT_OFFICER, department)
    checked_scopes = check_scopes(session, role=Role.DEPARTMENT_OFFICER, scopes=scopes)
    if secret is None:
        secret = new_client_secret()
    else:
        check_password(settings, secret, field="secret")
    shown_name = (name or "").strip() or cid
    if len(shown_name) > 100:
        raise ValidationFailed.one("name", _("at most {n} characters").format(n=100))
    if repository.client_by_client_id(session, cid) is not None:
        raise Conflict(
            _("An API client {client_id} exists already.").format(client_id=cid),
            details=[{"field": "client_id", "reason": _("taken")}],
        )
    client = ApiClient(
        client_id=cid,
        secret_hash=secret_hash or passwords.hash_password(settings, secret),
        name=shown_name,
        department=checked_department,
        role=Role.DEPARTMENT_OFFICER,
        scopes=checked_scopes,
    )
    session.add(client)
    session.flush()
    logger.info("API client %s created by %s", cid, actor.name)
    return CreatedClient(client=client, secret=secret)


def revoke_client(session: Session, actor: Actor, *, client_id: str) -> ApiClient:
    """Revoke an API client: its tokens stop working at their next use."""
    client = repository.client_by_client_id(session, normalise_name(client_id))
    if client is None:
        raise NotFound(_("There is no API client with this client id."))
    if client.revoked_at is None:
        client.revoked_at = utcnow()
        session.flush()
    logger.info("API client %s revoked by %s", client.client_id, actor.name)
    return client


def list_clients(session: Session) -> Sequence[ApiClient]:
    """Every API client, by client id."""
    return repository.list_clients(session)


# ============================================================================ signing in


class Outcome(enum.StrEnum):
    """How a sign-in attempt ended."""

    OK = "ok"
    INVALID = "invalid"  # unknown name, wrong password, disabled, revoked: all alike
    THROTTLED = "throttled"  # too many failures: wait ``retry_after`` seconds
    OTP_REQUIRED = "otp_required"  # password right; the account needs a TOTP code
    OTP_INVALID = "otp_invalid"  # password right; the code is wrong or was used already
    OTP_NOT_SET_UP = "otp_not_set_up"  # password right; no TOTP secret: ask an administrator


@dataclass(frozen=True, slots=True)
class SignInResult:
    """The outcome of an attempt; ``subject_id`` is the account's or client's row id."""

    outcome: Outcome
    subject_id: int | None = None
    retry_after: int | None = None

    @property
    def ok(self) -> bool:
        """True when the caller is who they said."""
        return self.outcome is Outcome.OK


def _accept_code(session: Session, account: Account, otp: str, now: datetime) -> bool:
    """True when ``otp`` is a current code of the account never accepted before."""
    if not account.totp_secret:
        return False
    step = totp.matching_step(account.totp_secret, otp, now=now)
    return step is not None and repository.claim_totp_step(session, account.id, step)


def _succeed(
    session: Session, settings: Settings, attempt: throttle.Attempt, account: Account, password: str
) -> SignInResult:
    if passwords.needs_rehash(settings, account.password_hash):
        account.password_hash = passwords.hash_password(settings, password)
    account.last_sign_in_at = attempt.now
    session.flush()
    throttle.record_success(session, attempt)
    logger.info("sign-in of %s", account.username)
    return SignInResult(Outcome.OK, subject_id=account.id)


def _fail(
    session: Session, settings: Settings, attempt: throttle.Attempt, outcome: Outcome
) -> SignInResult:
    throttle.record_failure(session, settings, attempt)
    # The submitted name is not logged: people type passwords into the name field.
    logger.info("failed sign-in (%s) from %s", outcome.value, attempt.address_key)
    return SignInResult(outcome)


def sign_in(
    session: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    otp: str | None,
    address: str | None,
    now: datetime | None = None,
) -> SignInResult:
    """Check a user name, password and (where required) TOTP code, within the throttle."""
    now = now or utcnow()
    name = normalise_name(username)[:64]
    attempt, wait = throttle.begin(
        session,
        settings,
        subject_key=throttle.account_key(name),
        address_key=throttle.address_key(address),
        now=now,
    )
    if wait is not None:
        return SignInResult(Outcome.THROTTLED, retry_after=wait)
    account = repository.account_by_username(session, name) if name else None
    if account is None:
        passwords.verify_dummy(settings, password)
        return _fail(session, settings, attempt, Outcome.INVALID)
    password_ok = passwords.verify_password(settings, account.password_hash, password)
    if not password_ok or account.disabled:
        return _fail(session, settings, attempt, Outcome.INVALID)
    if needs_totp(account):
        if not account.totp_secret:
            throttle.end_without_verdict(session, attempt)
            return SignInResult(Outcome.OTP_NOT_SET_UP)
        if not otp:
            throttle.end_without_verdict(session, attempt)
            return SignInResult(Outcome.OTP_REQUIRED, subject_id=account.id)
        if not _accept_code(session, account, otp, now):
            return _fail(session, settings, attempt, Outcome.OTP_INVALID)
    return _succeed(session, settings, attempt, account, password)


def second_factor(
    session: Session,
    settings: Settings,
    *,
    account_id: int,
    otp: str,
    address: str | None,
    now: datetime | None = None,
) -> SignInResult:
    """Finish a sign-in whose password was checked moments ago (the form's second step)."""
    now = now or utcnow()
    account = repository.account_by_id(session, account_id)
    if account is None or account.disabled:
        return SignInResult(Outcome.INVALID)
    attempt, wait = throttle.begin(
        session,
        settings,
        subject_key=throttle.account_key(account.username),
        address_key=throttle.address_key(address),
        now=now,
    )
    if wait is not None:
        return SignInResult(Outcome.THROTTLED, retry_after=wait)
    if not _accept_code(session, account, otp, now):
        return _fail(session, settings, attempt, Outcome.OTP_INVALID)
    account.last_sign_in_at = now
    session.flush()
    throttle.record_success(session, attempt)
    logger.info("sign-in of %s (second factor)", account.username)
    return SignInResult(Outcome.OK, subject_id=account.id)


def authenticate_client(
    session: Session,
    settings: Settings,
    *,
    client_id: str,
    client_secret: str,
    address: str | None,
    now: datetime | None = None,
) -> SignInResult:
    """Check an API client's id and secret, within the throttle."""
    now = now or utcnow()
    cid = normalise_name(client_id)[:64]
    attempt, wait = throttle.begin(
        session,
        settings,
        subject_key=throttle.client_key(cid),
        address_key=throttle.address_key(address),
        now=now,
    )
    if wait is not None:
        return SignInResult(Outcome.THROTTLED, retry_after=wait)
    client = repository.client_by_client_id(session, cid) if cid else None
    if client is None:
        passwords.verify_dummy(settings, client_secret)
        return _fail(session, settings, attempt, Outcome.INVALID)
    if (
        not passwords.verify_password(settings, client.secret_hash, client_secret)
        or client.revoked_at is not None
    ):
        return _fail(session, settings, attempt, Outcome.INVALID)
    if passwords.needs_rehash(settings, client.secret_hash):
        client.secret_hash = passwords.hash_password(settings, client_secret)
        session.flush()
    throttle.record_success(session, attempt)
    logger.info("token for API client %s", client.client_id)
    return SignInResult(Outcome.OK, subject_id=client.id)


# ============================================================================ bearer tokens


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a bearer token stands for, as loaded for this request."""

    kind: str  # account / client
    subject_id: int
    name: str
    display_name: str
    role: str
    department: str | None
    scopes: tuple[str, ...]


def identity_for_token(session: Session, settings: Settings, *, token: str) -> Identity | None:
    """The live account or client behind a bearer token; None when the token is forged or
    expired, the account disabled or the client revoked (one primary-key query)."""
    claims = read_token(settings.require_secret_key(), token)
    if claims is None:
        return None
    if claims.kind == "account":
        row = repository.account_row(session, claims.subject_id)
        if row is None or row.disabled:
            return None
        return Identity(
            kind="account",
            subject_id=row.id,
            name=row.username,
            display_name=row.display_name,
            role=str(row.role),
            department=row.department,
            scopes=tuple(row.scopes or ()),
        )
    row = repository.client_row(session, claims.subject_id)
    if row is None or row.revoked_at is not None:
        return None
    return Identity(
        kind="client",
        subject_id=row.id,
        name=row.client_id,
        display_name=row.client_id,
        role=str(row.role),
        department=row.department,
        scopes=tuple(row.scopes or ()),
    )
