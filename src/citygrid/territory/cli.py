"""``citygrid territory ...`` commands."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Territory: districts, streets, communities and grids.", no_args_is_help=True
)
