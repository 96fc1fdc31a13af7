"""A real HTTP server for tests that need one (browsers, stream clients, webhooks): the app
served by uvicorn (``citygrid.kit.serve.Server``) on 127.0.0.1 and a free port, in a thread,
ready when its ``/healthz`` answers."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from citygrid.kit.serve import Server

DEADLINE = 10.0
"""Seconds a server may take to start or stop."""


@dataclass
class Running:
    """A served app: its base URL, the app, and the uvicorn server (to stop it)."""

    url: str
    app: FastAPI
    server: Server
    thread: threading.Thread

    def stop(self) -> None:
        """Shut the server down as a signal would, and wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout=DEADLINE)


@contextmanager
def serve(app: FastAPI, *, lifespan: str = "off") -> Iterator[Running]:
    """Serve an app until the block ends; ``lifespan="on"`` also runs its start-up (an
    embedded worker, say)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan=lifespan,
            timeout_graceful_shutdown=5,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/healthz", timeout=1) as response:  # noqa: S310
                if response.status == 200:
                    break
        except OSError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the live server did not start")
        time.sleep(0.02)
    running = Running(base_url, app, server, thread)
    try:
        yield running
    finally:
        running.stop()
        listener.close()
