"""pool.instance_client against a real socket: answers that arrive in pieces, or too big."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from pool.instance_client import InstanceClient, ProvisionRequest
from shared.errors import UpstreamError

ANSWER = {
    "ok": True,
    "conversationId": "c" * 40,
    "inviteUrl": "https://example.test/invite/" + "x" * 200,
    "joined": False,
    "status": "created",
}


@asynccontextmanager
async def _serve(chunks: list[bytes], pause: float) -> AsyncIterator[str]:
    """A one-route HTTP/1.1 server that answers with a chunked body, pausing between chunks."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        for chunk in chunks:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
            await asyncio.sleep(pause)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def client() -> AsyncIterator[InstanceClient]:
    instances = InstanceClient()
    yield instances
    await instances.aclose()


async def test_provision_reads_an_answer_that_arrives_in_pieces(client: InstanceClient) -> None:
    body = json.dumps(ANSWER).encode()
    pieces = [body[:30], body[30:120], body[120:]]
    async with _serve(pieces, pause=0.05) as url:
        provisioned = await client.provision(
            url, "tok", ProvisionRequest(agent_name="a", instructions="i"), timeout=5.0
        )
    assert provisioned.conversation_id == ANSWER["conversationId"]
    assert provisioned.invite_url == ANSWER["inviteUrl"]


async def test_the_timeout_covers_an_answer_that_trickles_in(client: InstanceClient) -> None:
    body = json.dumps(ANSWER).encode()
    pieces = [body[i : i + 10] for i in range(0, len(body), 10)]
    async with _serve(pieces, pause=0.2) as url:
        started = time.monotonic()
        with pytest.raises(UpstreamError, match="unreachable"):
            await client.provision(
                url, "tok", ProvisionRequest(agent_name="a", instructions="i"), timeout=0.5
            )
    assert time.monotonic() - started < 1.5  # the headers came at once; the body's pieces ran it out


async def test_an_answer_past_the_size_cap_is_an_upstream_error(client: InstanceClient) -> None:
    huge = b'{"ok": true, "pad": "' + b"x" * (70 * 1024) + b'"}'
    async with _serve([huge[i : i + 8192] for i in range(0, len(huge), 8192)], pause=0.0) as url:
        with pytest.raises(UpstreamError, match="larger than"):
            await client.status(url, "tok", timeout=5.0)
