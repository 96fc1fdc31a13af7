"""``citygrid users ...`` and ``citygrid clients ...``: accounts and API clients.

Refused input (a bad role, scope, department, password, or an unknown or taken name) exits
with status 2 and a message naming the field; nothing is written then.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from citygrid.kit.errors import CitygridError

users_app = typer.Typer(help="Accounts of people: create, disable, list.", no_args_is_help=True)
clients_app = typer.Typer(
    help="API clients of department systems: create, revoke, list.", no_args_is_help=True
)

# Defined here rather than imported: ``citygrid.cli`` imports this module while it loads.
DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite database file (overrides CITYGRID_DATABASE_URL)."),
]
ScopeOption = Annotated[
    list[str],
    typer.Option(
        "--scope",
        help="A territorial code the account sees (repeat for several): 6, 9, 12 or 15 digits.",
    ),
]

CLI_ACTOR_NAME = "cli"


def _open_database(db: Path | None) -> str:
    """The database URL, after checking that the schema is there (exit 2 if not)."""
    from citygrid.cli import use_database
    from citygrid.kit import i18n
    from citygrid.kit.migrate import current_revision
    from citygrid.kit.settings import get_settings

    url = use_database(db)
    i18n.set_locale(get_settings().default_locale)
    if (db is not None and not db.exists()) or current_revision(url) is None:
        typer.echo(
            i18n._("The database has no schema yet: run `citygrid db upgrade` first."), err=True
        )
        raise typer.Exit(2)
    return url


def _refuse(error: CitygridError) -> typer.Exit:
    typer.echo(f"Error: {error.message}", err=True)
    return typer.Exit(2)


@contextmanager
def _unit_of_work(db: Path | None) -> Iterator[Session]:
    """A committed unit of work on the chosen database; refused input exits with 2."""
    from citygrid.kit.db import unit_of_work

    url = _open_database(db)
    try:
        with unit_of_work(url) as session:
            yield session
    except CitygridError as error:
        raise _refuse(error) from None


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n")
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


# ============================================================================ users


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="Sign-in name: lower-case letters, digits, .-_")],
    role: Annotated[str, typer.Option("--role", help="Role, e.g. grid_worker, auditor.")],
    scope: ScopeOption,
    department: Annotated[
        str | None, typer.Option("--department", help="Department slug (department officers).")
    ] = None,
    display_name: Annotated[
        str | None, typer.Option("--display-name", help="Name shown in the page header.")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    db: DbOption = None,
) -> None:
    """Create an account (the password is asked twice, or read with --password-stdin)."""
    from citygrid.access import accounts, totp
    from citygrid.kit.actor import Actor
    from citygrid.kit.settings import get_settings

    password = _read_password(password_stdin)
    with _unit_of_work(db) as session:
        created = accounts.create_account(
            session,
            Actor(name=CLI_ACTOR_NAME, kind="system"),
            settings=get_settings(),
            username=username,
            password=password,
            role=role,
            scopes=scope,
            department=department,
            display_name=display_name,
        )
        account = created.account
        name, secret = account.username, created.totp_secret
    typer.echo(f"Created account {name} ({role}, scope {', '.join(scope)}).")
    if secret:
        typer.echo("This account needs a second factor. Add it to an authenticator app:")
        typer.echo(f"  TOTP secret: {secret}")
        typer.echo(f"  URI: {totp.provisioning_uri(secret, name)}")


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="The account's user name.")],
    db: DbOption = None,
) -> None:
    """Disable an account: it cannot sign in, its sessions end and its tokens stop working."""
    from citygrid.access import accounts
    from citygrid.kit.actor import Actor

    with _unit_of_work(db) as session:
        account = accounts.disable_account(
            session, Actor(name=CLI_ACTOR_NAME, kind="system"), username=username
        )
        name = account.username
    typer.echo(f"Disabled account {name}.")


@users_app.command("enable")
def users_enable(
    username: Annotated[str, typer.Argument(help="The account's user name.")],
    db: DbOption = None,
) -> None:
    """Enable a disabled account again."""
    from citygrid.access import accounts
    from citygrid.kit.actor import Actor

    with _unit_of_work(db) as session:
        account = accounts.enable_account(
            session, Actor(name=CLI_ACTOR_NAME, kind="system"), username=username
        )
        name = account.username
    typer.echo(f"Enabled account {name}.")


@users_app.command("reset-totp")
def users_reset_totp(
    username: Annotated[str, typer.Argument(help="The account's user name.")],
    db: DbOption = None,
) -> None:
    """Give an account a new TOTP secret (a lost phone); prints it once."""
    from citygrid.access import accounts, totp
    from citygrid.kit.actor import Actor

    with _unit_of_work(db) as session:
        secret = accounts.reset_totp(
            session, Actor(name=CLI_ACTOR_NAME, kind="system"), username=username
        )
        name = accounts.normalise_name(username)
    typer.echo(f"New TOTP secret of {name}: {secret}")
    typer.echo(f"  URI: {totp.provisioning_uri(secret, name)}")


def _table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        typer.echo("  ".join(cells).rstrip())


@users_app.command("list")
def users_list(db: DbOption = None) -> None:
    """List the accounts: name, role, department, scope, second factor, state (no secrets)."""
    from citygrid.access import accounts

    with _unit_of_work(db) as session:
        rows = [
            (
                account.username,
                account.display_name,
                str(account.role),
                account.department or "-",
                ",".join(account.scopes),
                "yes" if accounts.needs_totp(account) else "no",
                "disabled" if account.disabled else "active",
            )
            for account in accounts.list_accounts(session)
        ]
    if not rows:
        typer.echo("No accounts.")
        return
    _table(("USERNAME", "NAME", "ROLE", "DEPARTMENT", "SCOPE", "TOTP", "STATE"), rows)


# ============================================================================ clients


@clients_app.command("create")
def clients_create(
    client_id: Annotated[str, typer.Argument(help="Client id: lower-case letters, digits, .-_")],
    department: Annotated[str, typer.Option("--department", help="Department slug.")],
    scope: ScopeOption,
    name: Annotated[str | None, typer.Option("--name", help="A readable name.")] = None,
    db: DbOption = None,
) -> None:
    """Register a department system; its secret is printed once (only a hash is kept)."""
    from citygrid.access import accounts
    from citygrid.kit.actor import Actor
    from citygrid.kit.settings import get_settings

    with _unit_of_work(db) as session:
        created = accounts.create_client(
            session,
            Actor(name=CLI_ACTOR_NAME, kind="system"),
            settings=get_settings(),
            client_id=client_id,
            department=department,
            scopes=scope,
            name=name,
        )
        cid, secret = created.client.client_id, created.secret
    typer.echo(f"Created API client {cid} ({department}, scope {', '.join(scope)}).")
    typer.echo(f"  client secret (shown once, store it now): {secret}")


@clients_app.command("revoke")
def clients_revoke(
    client_id: Annotated[str, typer.Argument(help="The client id.")],
    db: DbOption = None,
) -> None:
    """Revoke an API client: its tokens stop working at once."""
    from citygrid.access import accounts
    from citygrid.kit.actor import Actor

    with _unit_of_work(db) as session:
        client = accounts.revoke_client(
            session, Actor(name=CLI_ACTOR_NAME, kind="system"), client_id=client_id
        )
        cid = client.client_id
    typer.echo(f"Revoked API client {cid}.")


@clients_app.command("list")
def clients_list(db: DbOption = None) -> None:
    """List the API clients (no secrets)."""
    from citygrid.access import accounts

    with _unit_of_work(db) as session:
        rows = [
            (
                client.client_id,
                client.department,
                ",".join(client.scopes),
                "revoked" if client.revoked_at is not None else "active",
            )
            for client in accounts.list_clients(session)
        ]
    if not rows:
        typer.echo("No API clients.")
        return
    _table(("CLIENT_ID", "DEPARTMENT", "SCOPE", "STATE"), rows)
