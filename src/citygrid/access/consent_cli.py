"""``citygrid consent grant|revoke|list``: the consent store from the command line, until the
citizen portal fills it. Persons are named by their opaque ref, never by ID number (a command
line ends up in shell histories and process lists). Every grant and revocation is audited."""

from __future__ import annotations

import getpass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from citygrid.kit.actor import Actor
from citygrid.kit.clock import local_today
from citygrid.kit.errors import CitygridError

if TYPE_CHECKING:
    from citygrid.access.consent import ConsentRead

app = typer.Typer(
    help="Residents' consents to reading their data for a purpose.", no_args_is_help=True
)

# Defined here rather than imported: ``citygrid.cli`` imports this module while it loads.
DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite database file (overrides CITYGRID_DATABASE_URL)."),
]
PersonOption = Annotated[
    str, typer.Option("--person", help="The person's opaque ref (never the ID number).")
]

#: How long a consent granted from the command line lasts unless --until says otherwise.
DEFAULT_DAYS = 365


def _operator() -> Actor:
    """The operator at the terminal, as the access log names them."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return Actor(name=f"cli:{user}"[:100], role="system", kind="system")


def _open(db: Path | None) -> str:
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


def _fail(error: CitygridError) -> typer.Exit:
    typer.echo(error.message, err=True)
    return typer.Exit(1)


def _describe(item: ConsentRead) -> str:
    until = item.valid_until.isoformat() if item.valid_until else "-"
    return (
        f"{item.id}\t{item.status}\t{item.requester_department}\t{item.purpose}\t"
        f"{','.join(item.field_classes)}\t{item.valid_from.isoformat()}..{until}\t"
        f"{item.obtained_via}"
    )


@app.command("grant")
def grant(
    person: PersonOption,
    department: Annotated[
        str,
        typer.Option(help="Who may read: a department slug (e.g. civil-affairs) or a role."),
    ],
    purpose: Annotated[str, typer.Option(help="A consent-based purpose, e.g. allowance-review.")],
    classes: Annotated[
        str, typer.Option(help="Field classes, comma-separated, e.g. identity,contact.")
    ],
    valid_from: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD; default today).")
    ] = None,
    valid_until: Annotated[
        str | None,
        typer.Option("--until", help=f"Last day (YYYY-MM-DD; default {DEFAULT_DAYS} days on)."),
    ] = None,
    via: Annotated[str, typer.Option(help="How it was obtained: paper, sms, portal or cli.")] = (
        "paper"
    ),
    db: DbOption = None,
) -> None:
    """Record a resident's consent (audited)."""
    from citygrid.access import consent
    from citygrid.kit.db import unit_of_work

    url = _open(db)
    try:
        first = date.fromisoformat(valid_from) if valid_from else local_today()
        last = date.fromisoformat(valid_until) if valid_until else first + timedelta(DEFAULT_DAYS)
    except ValueError as exc:
        typer.echo(f"--from/--until: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        with unit_of_work(url) as session:
            granted = consent.grant_consent(
                session,
                _operator(),
                person_ref=person,
                requester_department=department,
                purpose=purpose,
                field_classes=[part.strip() for part in classes.split(",") if part.strip()],
                valid_from=first,
                valid_until=last,
                obtained_via=via,
            )
    except CitygridError as error:
        raise _fail(error) from error
    typer.echo(f"granted consent {granted.id}")
    typer.echo(_describe(granted))


@app.command("revoke")
def revoke(
    consent_id: Annotated[int, typer.Argument(help="The consent's number (see `list`).")],
    db: DbOption = None,
) -> None:
    """Revoke a consent from now on (audited)."""
    from citygrid.access import consent
    from citygrid.kit.db import unit_of_work

    url = _open(db)
    try:
        with unit_of_work(url) as session:
            revoked = consent.revoke_consent(session, _operator(), consent_id=consent_id)
    except CitygridError as error:
        raise _fail(error) from error
    typer.echo(f"revoked consent {revoked.id}")


@app.command("list")
def list_consents(person: PersonOption, db: DbOption = None) -> None:
    """A person's consents, newest first, with their state today."""
    from citygrid.access import consent
    from citygrid.kit.db import unit_of_work

    url = _open(db)
    try:
        with unit_of_work(url) as session:
            found = consent.consents_of_person(session, _operator(), person_ref=person)
    except CitygridError as error:
        raise _fail(error) from error
    typer.echo("id\tstatus\trequester\tpurpose\tclasses\tvalid\tobtained_via")
    for item in found:
        typer.echo(_describe(item))
