"""A department system's webhook receiver: a real HTTP server on 127.0.0.1 (a free port) in a
thread. It answers citygrid's challenge (or not, as told), records every POST with its
headers and body, and answers with the status it is told to; ``stop()`` takes it off the
network (connections refused) and ``start()`` brings it back on the same port."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Received:
    """A POST the receiver got."""

    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body, parsed."""
        return json.loads(self.body)

    @property
    def delivery(self) -> str:
        """The delivery id header."""
        return self.headers["x-citygrid-delivery"]


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: float = 300) -> bool:
    """What docs/exchange.md tells a receiver to do, written out independently."""
    timestamp = headers["x-citygrid-timestamp"]
    if abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest("sha256=" + expected.hexdigest(), headers["x-citygrid-signature"])


class Receiver:
    """The receiver; ``challenge`` is "echo", "wrong" (another body) or "missing" (404)."""

    def __init__(self) -> None:
        self.challenge = "echo"
        self.status = 200
        self.received: list[Received] = []
        self.challenges: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The callback URL."""
        return f"http://127.0.0.1:{self.port}/hooks/citygrid"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                return

            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                with receiver._lock:
                    receiver.challenges.append(query)
                if receiver.challenge == "missing":
                    self._answer(404, b"no such hook")
                elif receiver.challenge == "wrong":
                    self._answer(200, b"hello")
                else:
                    self._answer(200, query.get("hub.challenge", "").encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = receiver.status
                if 200 <= status < 300:
                    with receiver._lock:
                        receiver.received.append(Received(headers, body))
                self._answer(status)

        return Handler

    def start(self) -> Receiver:
        """Listen (on the same port as before, if it ran before)."""
        server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: connections are refused until ``start()``."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self) -> list[Any]:
        """The JSON bodies received, in order."""
        with self._lock:
            return [item.json for item in self.received]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Poll until ``count`` POSTs arrived (or the deadline passes); what arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        with self._lock:
            return list(self.received)
