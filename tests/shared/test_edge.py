"""shared.edge.BodyTooLarge at the ASGI level: what it lets the app read, and what it answers."""

from __future__ import annotations

import json

from starlette.types import Message, Receive, Scope, Send

from shared.edge import BodyTooLarge
from shared.errors import error_body

LIMIT = 1000
CHUNK = 300


def request_scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/x", "headers": headers}


class Client:
    """Sends a body in chunks and records what the app pulled and what was answered."""

    def __init__(self, size: int) -> None:
        self.remaining = size
        self.pulled = 0
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        chunk = min(CHUNK, self.remaining)
        self.remaining -= chunk
        self.pulled += chunk
        return {"type": "http.request", "body": b"x" * chunk, "more_body": self.remaining > 0}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


async def reading_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the whole body as any framework would, then answers how much it got."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"client left"})
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(len(body)).encode()})


async def test_a_declared_length_over_the_limit_is_413_before_a_byte_is_read() -> None:
    client = Client(40 * 1024 * 1024)

    await BodyTooLarge(reading_app, LIMIT)(
        request_scope([(b"content-length", str(client.remaining).encode())]), client.receive, client.send
    )

    assert client.pulled == 0
    assert client.status == 413
    assert json.loads(client.body) == error_body(
        "PayloadTooLarge", f"the request body is larger than this service accepts ({LIMIT} bytes)"
    )


async def test_a_chunked_body_is_cut_at_the_limit_and_answered_413() -> None:
    client = Client(40 * 1024 * 1024)

    await BodyTooLarge(reading_app, LIMIT)(request_scope([]), client.receive, client.send)

    assert client.pulled <= LIMIT + CHUNK
    assert [m["type"] for m in client.sent] == ["http.response.start", "http.response.body"]
    assert client.status == 413
    assert json.loads(client.body)["kind"] == "PayloadTooLarge"


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    for headers in ([], [(b"content-length", str(LIMIT).encode())]):
        client = Client(LIMIT)

        await BodyTooLarge(reading_app, LIMIT)(request_scope(headers), client.receive, client.send)

        assert (client.status, client.body) == (200, str(LIMIT).encode())
