"""What both apps do at their edge, before any route runs: a body-size limit, and docs off in production.

A request body larger than the app's limit is refused with 413 before anything reads it.

Pure ASGI, outermost, so it runs before routing, authentication and parsing: FastAPI reads a whole
body before it solves any dependency, so without it an unauthenticated 40 MiB POST was held in
memory (twice) before its 401 (issue 11, finding 6). A declared `Content-Length` over the limit is
refused without reading a byte. A body without one (chunked) is counted while the app reads it: at
the limit this middleware answers 413 itself and tells the app the client left, so at most the
limit (plus one chunk) is ever read and the server stops reading the socket.
"""

from __future__ import annotations

import json
from typing import TypedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import PayloadTooLarge, error_body


class BodyTooLarge:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        received = 0
        refused = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    if not started:
                        await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 is the answer; the app's own (to a "disconnect") goes nowhere
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, counted_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        detail = f"the request body is larger than this service accepts ({self.max_bytes} bytes)"
        body = json.dumps(error_body(PayloadTooLarge.__name__, detail)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    # The unread rest of the body makes this connection useless for another request.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length itself
    return None


class DocsRoutes(TypedDict, total=False):
    docs_url: str | None
    redoc_url: str | None
    openapi_url: str | None


def docs_routes(environment: str, enabled: bool | None) -> DocsRoutes:
    """FastAPI's arguments for `/docs`, `/redoc` and `/openapi.json`: served unless the setting says
    otherwise or, unset, in production (they map every route an attacker could try). Tests read
    the schema from `app.openapi()`, which works either way."""
    served = environment != "production" if enabled is None else enabled
    if served:
        return {}
    return {"docs_url": None, "redoc_url": None, "openapi_url": None}
