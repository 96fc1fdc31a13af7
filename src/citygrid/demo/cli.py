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
    SEED_GRID_WORKER,
)

if TYPE_CHECKING:
    from types import TracebackType

    from rich.progress import Progress, TaskID

    from citygrid.demo.builder import BuildReport
    from citygrid.demo.case_story import TileStory
    from citygrid.demo.story import DeathStory

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
    states = report.case_states
    if states:
        shown = ", ".join(f"{count:,} {state}" for state, count in sorted(states.items()))
        typer.echo(f"Case history of the last 90 days: {counts['cases']:,} cases ({shown}).")
    return report


def _use_demo_database(path: Path, *, feeds: bool = False) -> str:
    """Point this process's settings at the demo file, in demo mode (with the simulated
    department feeds when ``feeds``)."""
    from citygrid.kit.settings import get_settings, sqlite_url

    # Set before the settings are read: the demo runs with the documented demo secrets.
    os.environ["CITYGRID_DEMO_MODE"] = "true"
    os.environ["CITYGRID_DEMO_FEEDS"] = "true" if feeds else "false"
    os.environ["CITYGRID_DATABASE_URL"] = sqlite_url(path)
    get_settings.cache_clear()
    return get_settings().database_url


def _death_story(db: Path, deadline: float) -> None:
    """Run the death story against the demo file and print what happened."""
    from citygrid.demo.story import run_death_story
    from citygrid.kit import i18n
    from citygrid.kit.db import get_session_factory
    from citygrid.kit.errors import CitygridError
    from citygrid.kit.settings import get_settings
    from citygrid.kit.worker import worker_for

    if not db.exists():
        typer.echo(f"Error: no demo database at {db}; run `citygrid build-demo` first.", err=True)
        raise typer.Exit(2)
    url = _use_demo_database(db, feeds=False)
    settings = get_settings()
    i18n.set_locale("en")
    # The embedded worker delivers the outbox while the story waits (a running
    # `citygrid demo` server may deliver too: several workers are safe).
    worker = worker_for(settings)
    worker.start()
    try:
        story = run_death_story(get_session_factory(url), deadline=deadline)
    except CitygridError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    finally:
        worker.stop()
    for line in story_lines(story):
        typer.echo(line)
    if not story.complete:
        raise typer.Exit(1)


def _tile_story(db: Path) -> None:
    """Run the tile story against the demo file and print each step."""
    from citygrid.demo.case_story import run_tile_story
    from citygrid.kit import i18n
    from citygrid.kit.db import get_session_factory
    from citygrid.kit.errors import CitygridError
    from citygrid.kit.settings import get_settings

    if not db.exists():
        typer.echo(f"Error: no demo database at {db}; run `citygrid build-demo` first.", err=True)
        raise typer.Exit(2)
    url = _use_demo_database(db, feeds=False)
    i18n.set_locale("en")
    try:
        story = run_tile_story(get_session_factory(url), get_settings())
    except CitygridError as exc:
        typer.echo(f"Error: {exc.message}", err=True)
        raise typer.Exit(1) from None
    for line in tile_story_lines(story):
        typer.echo(line)
    if not story.complete:
        raise typer.Exit(1)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _hours(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} h"


def tile_story_lines(story: TileStory) -> list[str]:
    """The tile story as the command prints it: each step with its time."""
    lines = [f"The tile story in grid {SEED_GRID_CODE} ({SEED_GRID_WORKER}'s grid):", ""]
    for number, step in enumerate(story.steps, start=1):
        lines.append(f"  {number}. {step.at:%H:%M:%S} UTC (+{step.seconds:.2f} s)  {step.text}")
    lines.append("")
    evaluation = story.evaluation
    if evaluation is not None:
        row = next((item for item in evaluation.items if item.key == story.department), None)
        row = row or evaluation.total
        lines += [
            f"Evaluation of {story.department}, {evaluation.date_from} to {evaluation.date_to}:",
            f"  reported {row.reported:,}, registered {row.registered:,}, "
            f"closed {row.closed:,}, overdue now {row.overdue:,}",
            f"  registration rate {_percent(row.registration_rate)}, "
            f"closure rate {_percent(row.closure_rate)}, "
            f"on-time closure rate {_percent(row.on_time_closure_rate)}, "
            f"rework rate {_percent(row.rework_rate)}",
            f"  handling time: mean {_hours(row.handling_hours_avg)}, "
            f"90th percentile {_hours(row.handling_hours_p90)} (working hours)",
            "",
        ]
    if story.complete:
        lines.append(f"Case {story.case_ref} went through the whole loop and is evaluated.")
    else:
        lines.append(f"Case {story.case_ref} stopped at {story.state or 'reported'}.")
    return lines


def story_lines(story: DeathStory) -> list[str]:
    """The story as the command prints it."""

    def after(seconds: float | None) -> str:
        return "not seen before the deadline" if seconds is None else f"after {seconds:.2f} s"

    lines = [
        f"Public security registered the death of resident {story.subject} "
        f"(grid {SEED_GRID_CODE}); event {story.event_id}.",
        "",
        f"Civil affairs' subsistence allowance ({after(story.allowance_seconds)}):",
        f"  {story.allowance_before} -> {story.allowance_after or story.allowance_before}"
        + (f", {story.allowance_amount} yuan a month" if story.allowance_amount else "")
        + (" (pending review)" if story.allowance_after == "suspended" else ""),
        "",
        f"Tasks ({after(story.tasks_seconds)}):",
    ]
    for kind, assignee, due in story.tasks:
        who = assignee
        if assignee.isdigit():
            who = f"the grid worker of {assignee}"
            if assignee == SEED_GRID_CODE:
                who += f" ({SEED_GRID_WORKER}, /my/tasks)"
        lines.append(f"  {kind:<24} for {who}, due {due:%Y-%m-%d %H:%M} UTC")
    lines += ["", f"The access log: who was told, and why ({after(story.told_seconds)}):"]
    for told in story.told:
        lines.append(
            f"  #{told.entry_id:<6} {told.told:<22} {', '.join(told.fields):<24} "
            f"{told.effect}; purpose {told.purpose} ({told.legal_basis})"
        )
    lines.append("")
    if story.complete:
        lines.append(f"Everyone who needed to know was told within {story.seconds:.2f} s.")
    else:
        lines.append("Not every reaction was seen before the deadline.")
    return lines


def register(app: typer.Typer) -> None:
    """Add the demo commands to the main CLI."""
    demo_app = typer.Typer()
    app.add_typer(
        demo_app,
        name="demo",
        short_help="Serve the demo city (synthetic Yuexiu, Guangzhou), building it if missing.",
    )
    story_app = typer.Typer(help="Reproduce the demo's stories.", no_args_is_help=True)
    demo_app.add_typer(story_app, name="story")

    @demo_app.callback(invoke_without_command=True)
    def demo(
        ctx: typer.Context,
        db: DemoDbOption = DEFAULT_DEMO_PATH,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
        residents: ResidentsOption = None,
        seed: SeedOption = None,
        feeds: Annotated[
            bool,
            typer.Option(
                "--feeds/--no-feeds",
                help=(
                    "Simulated department feeds and cases: a few life events a minute and a "
                    "new case every 30 s (on by default)."
                ),
            ),
        ] = True,
    ) -> None:
        """Serve the demo city (synthetic Yuexiu District, Guangzhou), building it first if
        the file is missing. An existing file is served as it is: rebuild it with
        `citygrid build-demo --force`. Simulated department feeds publish a few life events
        a minute unless --no-feeds. `citygrid demo story death` replays the death story."""
        if ctx.invoked_subcommand is not None:
            return
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
        if seed is not None:
            os.environ["CITYGRID_DEMO_SEED"] = str(seed)
        url = _use_demo_database(db, feeds=feeds)
        shown_host = f"[{host}]" if ":" in host else host
        typer.echo("")
        typer.echo(f"  citygrid demo: http://{shown_host}:{port}/")
        typer.echo(
            f"  seed grid {SEED_GRID_CODE}: {SEED_GRID.buildings} buildings, "
            f"{SEED_GRID.households} households, {SEED_GRID.residents} residents"
        )
        typer.echo("  (demo mode: synthetic data and demo secrets; Ctrl+C stops the server)")
        typer.echo(
            "  simulated department feeds: "
            + (
                "on, a few life events a minute and a new case every 30 s (--no-feeds: off)"
                if feeds
                else "off"
            )
        )
        typer.echo(f"  the death story: citygrid demo story death --db {db}")
        typer.echo(f"  the tile story:  citygrid demo story tile --db {db}")
        typer.echo("")
        from citygrid.access.demo_accounts import demo_account_lines
        from citygrid.kit.settings import DEMO_SECRET

        for line in demo_account_lines(url, password=DEMO_SECRET):
            typer.echo(line)
        typer.echo("")
        serve_app(url, host=host, port=port)

    @story_app.command("death")
    def story_death(
        db: DemoDbOption = DEFAULT_DEMO_PATH,
        deadline: Annotated[
            float, typer.Option(help="Seconds to wait for every reaction before giving up.")
        ] = 5.0,
    ) -> None:
        """Public security registers the death of the seed grid's resident who receives a
        subsistence allowance; prints the allowance suspended, the grid worker's new task and
        the access-log entries naming who was told and why, as each is seen. Each run takes
        the next such resident."""
        _death_story(db, deadline)

    @story_app.command("tile")
    def story_tile(db: DemoDbOption = DEFAULT_DEMO_PATH) -> None:
        """Grid worker zhangsijun reports a broken floor tile near Jiefang North Road with a
        photo; the command centre's stream shows it; the dispatcher registers and dispatches
        it; the department accepts and answers; she verifies it on site; it is closed and
        evaluated. Prints each step with its time, then the department's evaluation."""
        _tile_story(db)

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
