"""An ASGI response for server-sent events that ends as soon as the client goes away.

Starlette's ``StreamingResponse`` notices a disconnect only on its next write under newer
ASGI servers; a feed that is quiet for minutes would hold its subscription that long. This
response watches ``receive`` for ``http.disconnect`` while it streams and stops the stream at
once, then runs ``on_close``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


class EventStreamResponse(Response):
    """``text/event-stream`` from an async iterator of ready-made chunks."""

    media_type = "text/event-stream"

    def __init__(
        self, chunks: AsyncIterator[bytes], *, on_close: Callable[[], None] | None = None
    ) -> None:
        # No body and so no Content-Length: the stream has no end that is known in advance.
        self.status_code = 200
        self.background = None
        self.init_headers({"X-Accel-Buffering": "no"})  # proxies must not hold events back
        self.chunks = chunks
        self.on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send the headers, then the chunks until they end or the client disconnects."""
        try:
            async with anyio.create_task_group() as group:

                async def watch_disconnect() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    group.cancel_scope.cancel()

                group.start_soon(watch_disconnect)
                await send(
                    {
                        "type": "http.response.start",
                        "status": self.status_code,
                        "headers": self.raw_headers,
                    }
                )
                with contextlib.suppress(OSError):  # the client went away mid-write
                    async for chunk in self.chunks:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()
        finally:
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()
            if self.on_close is not None:
                self.on_close()
