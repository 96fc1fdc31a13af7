"""The ``citygrid`` command line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from citygrid.kit.settings import get_settings

app = typer.Typer(
    name="citygrid",
    help="Grid-based city governance and cross-department data exchange.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def use_database(db: Path | None) -> str:
    """Point this process at a SQLite file given by ``--db`` (else the settings' URL)."""
    if db is not None:
        os.environ["CITYGRID_DATABASE_URL"] = f"sqlite:///{db}"
        get_settings.cache_clear()
    return get_settings().database_url


DbOption = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite database file (overrides CITYGRID_DATABASE_URL)."),
]
HostOption = Annotated[str, typer.Option(help="Address to listen on.")]
PortOption = Annotated[int, typer.Option(help="Port to listen on.")]


@db_app.command("upgrade")
def db_upgrade(
    db: DbOption = None,
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database to the latest schema (or to REVISION)."""
    from citygrid.kit.migrate import upgrade

    upgrade(use_database(db), revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. base.")],
    db: DbOption = None,
) -> None:
    """Migrate the database down to REVISION."""
    from citygrid.kit.migrate import downgrade

    downgrade(use_database(db), revision)
    typer.echo(f"database at {revision}")


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database."""
    from citygrid.kit.migrate import current_revision

    typer.echo(current_revision(use_database(db)) or "(empty)")


@app.command("serve")
def serve(
    db: DbOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8000,
) -> None:
    """Serve an existing database (pages, API at /api/v1, OpenAPI at /docs)."""
    from citygrid.kit.serve import serve_app

    serve_app(use_database(db), host=host, port=port)


@app.command("worker")
def worker(db: DbOption = None) -> None:
    """Run the background tasks (audit sequencer, ...) until Ctrl+C or SIGTERM; several may run."""
    from citygrid.kit.migrate import current_revision
    from citygrid.kit.worker import run_worker

    if current_revision(use_database(db)) is None:
        typer.echo("The database has no schema yet: run `citygrid db upgrade` first.", err=True)
        raise typer.Exit(2)
    run_worker(get_settings())


def _register_domain_commands() -> None:
    from citygrid.access.cli import clients_app, users_app
    from citygrid.access.consent_cli import app as consent_app
    from citygrid.audit.cli import app as audit_app
    from citygrid.cases.open311.cli import app as open311_app
    from citygrid.demo.cli import register as register_demo
    from citygrid.exchange.cli import app as exchange_app
    from citygrid.exchange.cli import import_file
    from citygrid.territory.cli import app as territory_app

    app.add_typer(territory_app, name="territory")
    app.add_typer(exchange_app, name="exchange")
    app.command("import")(import_file)
    register_demo(app)
    app.add_typer(users_app, name="users")
    app.add_typer(clients_app, name="clients")
    app.add_typer(audit_app, name="audit")
    app.add_typer(consent_app, name="consent")
    app.add_typer(open311_app, name="open311")


_register_domain_commands()


def main() -> None:
    """Entry point of the console script."""
    app()
