"""``citygrid open311 keys ...``: API keys of Open311 client applications.

A key is printed once, when it is created; the database keeps only its SHA-256 and its
prefix (``o311_`` and 8 characters), by which it is listed and revoked. Refused input exits
with status 2 and a message naming the field; nothing is written then.
"""

from __future__ import annotations

from typing import Annotated

import typer

from citygrid.access.cli import CLI_ACTOR_NAME, DbOption, _table, _unit_of_work

app = typer.Typer(
    help="Open311 GeoReport v2: API keys of client applications.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys: create, revoke, list.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="The application, e.g. 'City app (iOS)'.")],
    department: Annotated[
        str, typer.Option("--department", help="Department slug that answers for the app.")
    ],
    db: DbOption = None,
) -> None:
    """Issue a key; it is printed once and cannot be shown again."""
    from citygrid.cases.open311 import service
    from citygrid.kit.actor import Actor

    with _unit_of_work(db) as session:
        issued = service.create_key(
            session, Actor(name=CLI_ACTOR_NAME, kind="system"), name=name, department=department
        )
        prefix, api_key = issued.row.prefix, issued.api_key
    typer.echo(f"Created Open311 key {prefix} for {name} ({department}).")
    typer.echo("Give this key to the application; it is not shown again:")
    typer.echo(f"  {api_key}")


@keys_app.command("revoke")
def keys_revoke(
    prefix: Annotated[str, typer.Argument(help="The key's prefix, as `keys list` shows it.")],
    db: DbOption = None,
) -> None:
    """Revoke a key: from now on its requests are refused (403)."""
    from citygrid.cases.open311 import service
    from citygrid.kit.actor import Actor

    with _unit_of_work(db) as session:
        row = service.revoke_key(session, Actor(name=CLI_ACTOR_NAME, kind="system"), prefix=prefix)
        shown = row.prefix
    typer.echo(f"Revoked Open311 key {shown}.")


@keys_app.command("list")
def keys_list(db: DbOption = None) -> None:
    """List the keys: prefix, application, department, created, state (never the keys)."""
    from citygrid.cases.open311 import service

    with _unit_of_work(db) as session:
        rows = [
            (
                row.prefix,
                row.name,
                row.department,
                row.created_at.strftime("%Y-%m-%d %H:%M"),
                "revoked" if row.revoked_at is not None else "active",
            )
            for row in service.list_keys(session)
        ]
    _table(("prefix", "application", "department", "created", "state"), rows)
