"""``citygrid exchange ...``: member departments, the outbox and its purge.

Refused input exits with status 2 and a message naming the field; nothing is written then.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from citygrid.exchange.webhooks.cli import app as webhooks_app
from citygrid.kit.errors import CitygridError

if TYPE_CHECKING:
    from citygrid.exchange.importing import ImportResult

app = typer.Typer(
    help="Data exchange: member departments, the catalogue, the outbox and its purge.",
    no_args_is_help=True,
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


@app.command("purge")
def purge(
    db: DbOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing")
    ] = False,
    batch: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=10_000,
            help="Rows examined per transaction (default CITYGRID_PURGE_BATCH_SIZE)",
        ),
    ] = None,
) -> None:
    """Delete delivered and dead outbox entries and webhook deliveries past their retention.

    Outbox entries delivered more than CITYGRID_OUTBOX_RETENTION_DAYS ago (with their
    consumers' records), webhook deliveries delivered more than
    CITYGRID_WEBHOOK_RETENTION_DAYS ago (with their attempts), dead ones of both last tried
    more than CITYGRID_DEAD_LETTER_RETENTION_DAYS ago; a window of rows per transaction.
    Pending and in-flight rows, and the life events (idempotent replays, the scoreboard),
    are never deleted."""
    from citygrid.exchange import retention
    from citygrid.kit.db import get_session_factory
    from citygrid.kit.i18n import _
    from citygrid.kit.settings import get_settings

    url = _open_database(db)
    settings = get_settings()
    report = retention.purge(
        get_session_factory(url),
        retention=retention.Retention.from_settings(settings),
        batch=batch or settings.purge_batch_size,
        dry_run=dry_run,
    )
    typer.echo(_("Would delete (dry run, nothing changed):") if dry_run else _("Deleted:"))
    for label, count in (
        (_("outbox entries"), report.outbox_entries),
        (_("consumers' delivery records"), report.consumer_records),
        (_("webhook deliveries"), report.webhook_deliveries),
        (_("webhook delivery attempts"), report.webhook_attempts),
    ):
        typer.echo(f"{label}\t{count}")


class _RichImportProgress:
    """The import's progress bar on standard error: bytes of a CSV file, rows of a sheet."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            MofNCompleteColumn,
            Progress,
            TaskID,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._columns = {
            "bytes": DownloadColumn(),
            "rows": MofNCompleteColumn(),
        }
        self._make = lambda unit: Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            self._columns[unit],
            TextColumn("{task.fields[rows]:,} rows"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def start(self, description: str, *, total: int | None, unit: str, done: int) -> None:
        """Begin a bar for a pass over the file."""
        self.stop()
        self._progress = self._make(unit)
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, completed=done, rows=0)

    def update(self, done: int, *, rows: int) -> None:
        """Move the bar."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, completed=done, rows=rows)

    def stop(self) -> None:
        """End the current bar."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def import_file(
    dataset: Annotated[str, typer.Argument(help="Dataset slug, e.g. pensions")],
    file: Annotated[Path, typer.Argument(help="A CSV (UTF-8 or GB18030) or XLSX file")],
    department: Annotated[
        str, typer.Option("--department", help="The publishing department (must own the dataset)")
    ],
    mode: Annotated[
        str,
        typer.Option(
            help="valid_rows: apply the valid rows, report the others; all_or_nothing: check "
            "the whole file first and apply it only if no row is rejected"
        ),
    ] = "valid_rows",
    errors: Annotated[
        Path | None,
        typer.Option("--errors", help="The error report (CSV); default FILE.errors.csv"),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", help="Rows per transaction (1 to 10,000)")
    ] = 10_000,
    encoding: Annotated[
        str | None, typer.Option(help="The CSV file's encoding (default: detected)")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Import the file again from its first row")
    ] = False,
    read_ahead: Annotated[
        bool | None,
        typer.Option(
            "--read-ahead/--no-read-ahead",
            help="Read and validate the next batches in a second process while one is "
            "written (default: for files over 2 MiB or 20,000 sheet rows)",
        ),
    ] = None,
    db: DbOption = None,
) -> None:
    """Import a department's CSV or XLSX file into a dataset it owns.

    Streaming, in batches each committed with a checkpoint: killed and run again, it
    continues where it stopped. Exit status 0: every row applied; 2: rows rejected (listed
    in the error report; in valid_rows mode the others were applied, in all_or_nothing mode
    nothing was); 1: error."""
    from citygrid.exchange.importing import ImportRequest, run_import
    from citygrid.exchange.schemas import PublishMode
    from citygrid.kit.db import get_session_factory

    try:
        publish_mode = PublishMode(mode)
    except ValueError:
        typer.echo(f"--mode: one of {', '.join(m.value for m in PublishMode)}", err=True)
        raise typer.Exit(1) from None
    try:
        url = _open_database(db)
    except typer.Exit:
        raise typer.Exit(1) from None
    request = ImportRequest(
        dataset=dataset,
        path=file,
        department=department,
        mode=publish_mode,
        errors_path=errors,
        batch_size=batch_size,
        encoding=encoding,
        restart=restart,
        read_ahead=read_ahead,
    )
    progress = _RichImportProgress()
    try:
        result = run_import(get_session_factory(url), request, progress=progress)
    except CitygridError as error:
        progress.stop()
        typer.echo(error.message, err=True)
        raise typer.Exit(1) from None
    progress.stop()
    _report_import(result)


def _report_import(result: ImportResult) -> None:
    """Print what the import did; exit 2 when rows were rejected."""
    from citygrid.kit.i18n import _

    if result.state == "finished":
        typer.echo(
            _(
                "This file was imported before (import %(job)d): nothing to do. Run it with "
                "--restart to import it again."
            )
            % {"job": result.job_id}
        )
    elif result.state == "resumed":
        typer.echo(
            _("Resumed an interrupted import after line %(line)d.")
            % {"line": result.resumed_at_line}
        )
    typer.echo(
        _(
            "%(rows)d rows: %(created)d created, %(updated)d updated, %(unchanged)d unchanged, "
            "%(rejected)d rejected."
        )
        % {
            "rows": result.rows,
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "rejected": result.rejected,
        }
    )
    if result.report_incomplete:
        typer.echo(
            _(
                "The error report of the interrupted run was not found at %(path)s: the rows it "
                "rejected are counted but not listed."
            )
            % {"path": result.report_path},
            err=True,
        )
    if not result.rejected:
        return
    if result.applied:
        message = _("The rejected rows are listed in %(path)s; the others were applied.")
    else:
        message = _("The rejected rows are listed in %(path)s; nothing was applied.")
    typer.echo(message % {"path": result.report_path})
    raise typer.Exit(2)
