"""Serving the app with uvicorn."""

from __future__ import annotations

import logging

import typer
import uvicorn

from citygrid.kit.migrate import current_revision


def serve_app(database_url: str, *, host: str, port: int) -> None:
    """Serve the app on ``host:port`` against a migrated database."""
    if current_revision(database_url) is None:
        typer.echo(
            "The database has no schema yet: run `citygrid db upgrade` "
            "(or `citygrid demo` for the demo city).",
            err=True,
        )
        raise typer.Exit(2)
    from citygrid.app import create_app
    from citygrid.kit.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(start_worker=get_settings().embedded_worker)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
