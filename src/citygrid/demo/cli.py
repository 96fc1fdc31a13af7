"""``citygrid demo`` and ``citygrid build-demo``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the demo commands to the main CLI."""
