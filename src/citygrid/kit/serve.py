"""Serving the app with uvicorn."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

import typer
import uvicorn

from citygrid.kit.migrate import current_revision

#: Seconds uvicorn waits for open responses before cancelling them at shutdown.
GRACEFUL_SHUTDOWN_SECONDS = 10


class Server(uvicorn.Server):
    """uvicorn's server, which first ends the app's long-lived responses (the live feed's
    server-sent events) when it shuts down: uvicorn waits for open responses to finish, and
    an event stream never would.

    The app lists what to call in ``app.state.on_server_exit`` (callables, run on the event
    loop); ``citygrid.cases.feed`` adds its ``close`` there.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """End the streams, then shut down as uvicorn does."""
        state = getattr(self.config.app, "state", None)
        closers: list[Callable[[], Any]] = list(getattr(state, "on_server_exit", []) or [])
        for close in closers:
            close()
        await super().shutdown(sockets)


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
    run(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )


def run(app: Any, **options: Any) -> None:
    """Like ``uvicorn.run``, with citygrid's ``Server`` (streams end at shutdown)."""
    Server(uvicorn.Config(app, **options)).run()
