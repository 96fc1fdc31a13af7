"""``citygrid exchange ...``: member departments and the outbox.

Refused input exits with status 2 and a message naming the field; nothing is written then.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from citygrid.exchange.webhooks.cli import app as webhooks_app
from citygrid.kit.errors import CitygridError

app = typer.Typer(
    help="Data exchange: member departments, the catalogue and the outbox.", no_args_is_help=True
)
members_app = typer.Typer(help="Member departments: list, add, sync.", no_args_is_help=True)
app.add_typer(members_app, name="members")

app.add_typer(webhooks_app, name="webhooks")

# Defined here rather than imported: ``citygrid.cli`` imports this module while it loads.
DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite database file (overrides CITYGRID_DATABASE_URL)."),
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


def _refuse(error: CitygridError) -> None:
    typer.echo(error.message, err=True)
    raise typer.Exit(2)


@members_app.command("list")
def members_list(db: DbOption = None) -> None:
    """Print the member departments: slug, names, contact."""
    from citygrid.exchange import service
    from citygrid.kit.db import unit_of_work

    url = _open_database(db)
    with unit_of_work(url) as session:
        for member in service.list_members(session):
            typer.echo(f"{member.slug}\t{member.name_zh}\t{member.name_en}\t{member.contact}")


@members_app.command("add")
def members_add(
    slug: Annotated[str, typer.Argument(help="Lower-case slug, e.g. education")],
    name_zh: Annotated[str, typer.Option("--name-zh", help="Chinese name")],
    name_en: Annotated[str, typer.Option("--name-en", help="English name")],
    contact: Annotated[str, typer.Option(help="Who to contact about the data")] = "",
    db: DbOption = None,
) -> None:
    """Add a member department."""
    from citygrid.exchange import service
    from citygrid.kit.actor import Actor
    from citygrid.kit.db import unit_of_work

    url = _open_database(db)
    actor = Actor(name=CLI_ACTOR_NAME, role="admin", kind="system")
    data = {"slug": slug, "name_zh": name_zh, "name_en": name_en, "contact": contact}
    try:
        with unit_of_work(url) as session:
            member = service.add_member(session, actor, data=data)
            typer.echo(f"member {member.slug} added")
    except CitygridError as error:
        _refuse(error)


@members_app.command("sync")
def members_sync(db: DbOption = None) -> None:
    """Copy the catalogue file's members into the table (names and contacts updated)."""
    from citygrid.exchange import service
    from citygrid.kit.db import unit_of_work

    url = _open_database(db)
    with unit_of_work(url) as session:
        changed = service.sync_members(session)
    typer.echo(f"{changed} members added or updated")


@app.command("outbox")
def outbox_status(db: DbOption = None) -> None:
    """Print how many outbox entries are pending, claimed, delivered and dead."""
    from citygrid.exchange import outbox
    from citygrid.kit.db import unit_of_work

    url = _open_database(db)
    with unit_of_work(url) as session:
        counts = outbox.counts(session)
    for state in ("pending", "claimed", "delivered", "dead"):
        typer.echo(f"{state}\t{counts.get(state, 0)}")


@app.command("deliver")
def deliver(
    db: DbOption = None,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="Entries per claim")] = 100,
) -> None:
    """Deliver every due outbox entry now, then exit (a worker does this continuously)."""
    from citygrid.exchange import outbox
    from citygrid.exchange.tasks import worker_id
    from citygrid.kit.db import get_session_factory

    url = _open_database(db)
    report = outbox.drain(get_session_factory(url), worker_id=worker_id(), batch=batch)
    typer.echo(
        f"claimed {report.claimed}, delivered {report.delivered}, failed {report.failed}, "
        f"reactions applied {report.applied}"
    )
    if report.failed:
        raise typer.Exit(1)
