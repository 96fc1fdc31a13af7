"""``citygrid demo`` and ``citygrid build-demo``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from citygrid.demo.seed import (
    DEFAULT_RESIDENTS,
    DEFAULT_SEED,
    MINIMUM_RESIDENTS,
    SEED_GRID,
    SEED_GRID_CODE,
)

if TYPE_CHECKING:
    from types import TracebackType

    from rich.progress import Progress, TaskID

    from citygrid.demo.builder import BuildReport

DEFAULT_DEMO_PATH = Path("var/demo.sqlite3")

DemoDbOption = Annotated[
    Path,
    typer.Option("--db", help="SQLite file of the demo city.", dir_okay=False),
]
ResidentsOption = Annotated[
    int | None,
    typer.Option(
        help=(
            f"Total number of residents (at least {MINIMUM_RESIDENTS}, the seed grid's; "
            f"default {DEFAULT_RESIDENTS:,}). 1,000,000 is a city the size of the real Yuexiu."
        ),
    ),
]
SeedOption = Annotated[
    int | None,
    typer.Option(help=f"Random seed: the same seed gives the same city (default {DEFAULT_SEED})."),
]


class RichBuildProgress:
    """Shows the build's phases as rich progress bars."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress: Progress = Progress(
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichBuildProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._finish()
        self._progress.stop()

    def _finish(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[self._task]
            total = task.total if task.total is not None else 1
            self._progress.update(self._task, total=total, completed=total)

    def phase(self, name: str, total: int | None = None) -> None:
        """A new bar for the phase (the previous one is marked done)."""
        self._finish()
        self._task = self._progress.add_task(name, total=total)

    def advance(self, rows: int) -> None:
        """Move the current bar."""
        if self._task is not None:
            self._progress.advance(self._task, rows)


def _run_build(path: Path, *, residents: int, seed: int, force: bool) -> BuildReport:
    """Build with a progress bar; a user error exits with its message and nothing made."""
    from citygrid.demo.builder import build_demo_file, check_residents, check_seed
    from citygrid.kit import i18n
    from citygrid.kit.errors import CitygridError, Conflict
    from citygrid.kit.settings import get_settings

    i18n.set_locale(get_settings().default_locale)
    try:
        check_residents(residents)
        check_seed(seed)
        typer.echo(f"Building the demo city ({residents:,} residents, seed {seed}) into {path}")
        with RichBuildProgress() as progress:
            report = build_demo_file(
                path, residents=residents, seed=seed, force=force, progress=progress
            )
    except CitygridError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(1 if isinstance(exc, Conflict) else 2) from None
    counts = report.counts
    typer.echo(
        f"Built in {report.total_seconds:.1f} s: {counts['persons']:,} residents in "
        f"{counts['households']:,} households, {counts['buildings']:,} buildings, "
        f"{counts['housing_units']:,} housing units, {counts['organisations']:,} organisations, "
        f"{counts['components']:,} urban components, {counts['grids']:,} grids."
    )
    return report


def _use_demo_database(path: Path) -> str:
    """Point this process's settings at the demo file, in demo mode."""
    from citygrid.kit.settings import get_settings, sqlite_url

    # Set before the settings are read: the demo runs with the documented demo secrets.
    os.environ["CITYGRID_DEMO_MODE"] = "true"
    os.environ["CITYGRID_DATABASE_URL"] = sqlite_url(path)
    get_settings.cache_clear()
    return get_settings().database_url


def register(app: typer.Typer) -> None:
    """Add the demo commands to the main CLI."""

    @app.command(
        "demo",
        short_help="Serve the demo city (synthetic Yuexiu, Guangzhou), building it if missing.",
    )
    def demo(
        db: DemoDbOption = DEFAULT_DEMO_PATH,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        residents: ResidentsOption = None,
        seed: SeedOption = None,
    ) -> None:
        """Serve the demo city (synthetic Yuexiu District, Guangzhou), building it first if
        the file is missing. An existing file is served as it is: rebuild it with
        `citygrid build-demo --force`."""
        from citygrid.kit.serve import serve_app

        if db.exists():
            typer.echo(f"Serving the existing demo database {db}.")
            if residents is not None or seed is not None:
                typer.echo(
                    "  (--residents and --seed apply only to a new build: "
                    "run `citygrid build-demo --force` to rebuild it)"
                )
        else:
            _run_build(
                db,
                residents=DEFAULT_RESIDENTS if residents is None else residents,
                seed=DEFAULT_SEED if seed is None else seed,
                force=False,
            )
        url = _use_demo_database(db)
        shown_host = f"[{host}]" if ":" in host else host
        typer.echo("")
        typer.echo(f"  citygrid demo: http://{shown_host}:{port}/")
        typer.echo(
            f"  seed grid {SEED_GRID_CODE}: {SEED_GRID.buildings} buildings, "
            f"{SEED_GRID.households} households, {SEED_GRID.residents} residents"
        )
        typer.echo("  (demo mode: synthetic data and demo secrets; Ctrl+C stops the server)")
        typer.echo("")
        from citygrid.access.demo_accounts import demo_account_lines
        from citygrid.kit.settings import DEMO_SECRET

        for line in demo_account_lines(url, password=DEMO_SECRET):
            typer.echo(line)
        typer.echo("")
        serve_app(url, host=host, port=port)

    @app.command(
        "build-demo", short_help="Build the demo city into a SQLite file, without serving it."
    )
    def build_demo(
        db: DemoDbOption = DEFAULT_DEMO_PATH,
        residents: ResidentsOption = None,
        seed: SeedOption = None,
        force: Annotated[
            bool, typer.Option("--force", help="Replace the file if it exists.")
        ] = False,
    ) -> None:
        """Build the demo city into a SQLite file without serving it. Refuses to replace an
        existing file unless --force is given; a build that fails or is stopped leaves the
        old file (or none) in place."""
        _run_build(
            db,
            residents=DEFAULT_RESIDENTS if residents is None else residents,
            seed=DEFAULT_SEED if seed is None else seed,
            force=force,
        )
