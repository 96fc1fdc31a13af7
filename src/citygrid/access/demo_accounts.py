"""The demo's accounts (one per role) and API clients (one per department).

All share the demo password (``citygrid-demo`` by default), which the account service
accepts only in demo mode. Accounts that need a second factor get a random TOTP secret;
``demo_accounts_in`` reads them back so ``citygrid demo`` can print them when it serves.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from citygrid.access import accounts, passwords
from citygrid.access import auth_repository as repository
from citygrid.access.models import Role
from citygrid.kit.actor import Actor
from citygrid.kit.settings import Settings, get_settings

DEMO_ACTOR = Actor(name="demo-builder", role="system")
DISTRICT = "440104"
SEED_GRID = "440104001001002"


@dataclass(frozen=True, slots=True)
class DemoAccountSpec:
    """One demo account to create."""

    username: str
    display_name: str
    role: Role
    scopes: tuple[str, ...]
    department: str | None = None


DEMO_ACCOUNT_SPECS: tuple[DemoAccountSpec, ...] = (
    DemoAccountSpec("zhangsijun", "张思君", Role.GRID_WORKER, (SEED_GRID,)),
    DemoAccountSpec("community-official", "陈雅琴", Role.COMMUNITY_OFFICIAL, (SEED_GRID[:12],)),
    DemoAccountSpec("street-official", "王建国", Role.STREET_OFFICIAL, (SEED_GRID[:9],)),
    DemoAccountSpec("district-official", "刘志强", Role.DISTRICT_OFFICIAL, (DISTRICT,)),
    DemoAccountSpec("yuexiu-dispatcher", "黄晓东", Role.DISPATCHER, (DISTRICT,)),
    DemoAccountSpec(
        "ps-officer", "赵卫民", Role.DEPARTMENT_OFFICER, (DISTRICT,), "public-security"
    ),
    DemoAccountSpec(
        "fp-officer", "林淑芬", Role.DEPARTMENT_OFFICER, (DISTRICT,), "family-planning"
    ),
    DemoAccountSpec("ca-officer", "何美玲", Role.DEPARTMENT_OFFICER, (DISTRICT,), "civil-affairs"),
    DemoAccountSpec(
        "ss-officer", "梁振华", Role.DEPARTMENT_OFFICER, (DISTRICT,), "social-security"
    ),
    DemoAccountSpec("rh-officer", "周丽娟", Role.DEPARTMENT_OFFICER, (DISTRICT,), "rental-housing"),
    # The departments most cases go to: floor tiles and buildings; street order and the rest.
    DemoAccountSpec(
        "hc-officer", "陈建国", Role.DEPARTMENT_OFFICER, (DISTRICT,), "housing-construction"
    ),
    DemoAccountSpec(
        "um-officer", "吴志明", Role.DEPARTMENT_OFFICER, (DISTRICT,), "urban-management"
    ),
    # Street trees, flower beds, green spaces and fallen trees.
    DemoAccountSpec("ls-officer", "罗青山", Role.DEPARTMENT_OFFICER, (DISTRICT,), "landscaping"),
    # Electricity boxes.
    DemoAccountSpec("pw-officer", "孙海涛", Role.DEPARTMENT_OFFICER, (DISTRICT,), "power-supply"),
    # Traffic signs, bus stops and guardrails.
    DemoAccountSpec("tr-officer", "马晓军", Role.DEPARTMENT_OFFICER, (DISTRICT,), "transport"),
    DemoAccountSpec("auditor", "郑秀英", Role.AUDITOR, (DISTRICT,)),
    DemoAccountSpec("admin", "系统管理员", Role.ADMIN, (DISTRICT,)),
)

TOTP_COMMAND = "python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\""
"""Prints the current code of a TOTP secret (pyotp comes with citygrid)."""

DEMO_CLIENT_DEPARTMENTS = (
    "public-security",
    "family-planning",
    "civil-affairs",
    "social-security",
    "rental-housing",
    "housing-construction",
    "water-affairs",
)
"""Each is also the client id of its department's demo API client."""


@dataclass(frozen=True, slots=True)
class DemoAccount:
    """A demo account or API client, as the demo prints it (``kind`` account / client)."""

    kind: str
    name: str
    display_name: str
    role: str
    department: str | None
    scopes: tuple[str, ...]
    totp_secret: str | None = None


def create_demo_accounts(
    session: Session, *, password: str, settings: Settings | None = None
) -> list[DemoAccount]:
    """Create the demo accounts (one per role) and API clients (one per department).

    The password is refused outside demo mode (the settings' ``demo_mode``). It is hashed
    once and the hash shared: every demo credential has the same, published password anyway.
    Returns the accounts (with their TOTP secrets, where needed), then the clients.
    """
    settings = settings or get_settings()
    accounts.check_password(settings, password)
    shared_hash = passwords.hash_password(settings, password)
    made: list[DemoAccount] = []
    for spec in DEMO_ACCOUNT_SPECS:
        created = accounts.create_account(
            session,
            DEMO_ACTOR,
            settings=settings,
            username=spec.username,
            password=password,
            password_hash=shared_hash,
            role=spec.role,
            scopes=spec.scopes,
            department=spec.department,
            display_name=spec.display_name,
        )
        made.append(_demo_account(created.account.username, spec, created.totp_secret))
    for department in DEMO_CLIENT_DEPARTMENTS:
        accounts.create_client(
            session,
            DEMO_ACTOR,
            settings=settings,
            client_id=department,
            department=department,
            scopes=(DISTRICT,),
            secret=password,
            secret_hash=shared_hash,
        )
        made.append(
            DemoAccount(
                kind="client",
                name=department,
                display_name=department,
                role=Role.DEPARTMENT_OFFICER.value,
                department=department,
                scopes=(DISTRICT,),
            )
        )
    return made


def _demo_account(name: str, spec: DemoAccountSpec, secret: str | None) -> DemoAccount:
    return DemoAccount(
        kind="account",
        name=name,
        display_name=spec.display_name,
        role=spec.role.value,
        department=spec.department,
        scopes=spec.scopes,
        totp_secret=secret,
    )


def demo_accounts_in(session: Session) -> list[DemoAccount]:
    """The demo accounts and clients found in a database (for ``citygrid demo`` to print)."""
    found: list[DemoAccount] = []
    usernames = [spec.username for spec in DEMO_ACCOUNT_SPECS]
    for account in repository.accounts_by_usernames(session, usernames):
        found.append(
            DemoAccount(
                kind="account",
                name=account.username,
                display_name=account.display_name,
                role=str(account.role),
                department=account.department,
                scopes=tuple(account.scopes),
                totp_secret=account.totp_secret if accounts.needs_totp(account) else None,
            )
        )
    order = {name: index for index, name in enumerate(usernames)}
    found.sort(key=lambda item: order[item.name])
    clients = {client.client_id: client for client in repository.list_clients(session)}
    for client_id in DEMO_CLIENT_DEPARTMENTS:
        client = clients.get(client_id)
        if client is not None and client.revoked_at is None:
            found.append(
                DemoAccount(
                    kind="client",
                    name=client.client_id,
                    display_name=client.name,
                    role=str(client.role),
                    department=client.department,
                    scopes=tuple(client.scopes),
                )
            )
    return found


def demo_account_lines(database_url: str, *, password: str) -> list[str]:
    """What ``citygrid demo`` prints about signing in: accounts, password, TOTP secrets."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from citygrid.kit.settings import normalise_database_url

    # A plain engine that is closed at once: only reads, no journal-mode pragma, and no
    # connection (or SQLite side file) left behind before the server opens the database.
    engine = create_engine(normalise_database_url(database_url), poolclass=NullPool)
    try:
        with Session(engine) as session:
            found = demo_accounts_in(session)
    except SQLAlchemyError:
        # A demo file built by an older citygrid: its schema predates the accounts.
        return [
            "  (this demo database has an older schema: rebuild it with "
            "`citygrid build-demo --force`)"
        ]
    finally:
        engine.dispose()
    people = [item for item in found if item.kind == "account"]
    systems = [item.name for item in found if item.kind == "client"]
    if not people and not systems:
        return [
            "  (no demo accounts in this database: rebuild it with `citygrid build-demo --force`)"
        ]
    lines = [f"  Sign in at /signin with the password {password!r} as:"]
    width = max(len(item.name) for item in people) if people else 0
    for item in people:
        what = item.role + (f" ({item.department})" if item.department else "")
        line = f"    {item.name.ljust(width)}  {what}, scope {', '.join(item.scopes)}"
        if item.totp_secret:
            line += f"; TOTP secret {item.totp_secret}"
        lines.append(line)
    if any(item.totp_secret for item in people):
        lines.append(
            "  Accounts with a TOTP secret also ask for a 6-digit code: add the secret to an "
            "authenticator app, or print the current code with " + TOTP_COMMAND
        )
    if systems:
        lines.append(
            f"  API clients (client secret {password!r}), one per department: " + ", ".join(systems)
        )
    return lines
