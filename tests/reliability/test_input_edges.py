"""Hostile input at the edge of both apps: each is a 4xx that changes nothing, never a 500.

The first cases are what the deep fuzz run found answering 500 (a database error); the claims are
issue 11's finding 4 (text PostgreSQL cannot store was provisioned, then answered 500)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings as PoolSettings
from pool.main import create_app as create_pool_app
from pool.models import Claim, Instance
from services.config import Settings
from services.main import create_app
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH as POOL_AUTH
from tests.pool.conftest import FakeServices
from tests.pool.conftest import running as running_pool
from tests.pool.factories import add_fleet_instances
from tests.services.conftest import AUTH, running
from tests.support import serve


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/pooled?kind=sp%00x"),  # PostgreSQL text cannot hold a NUL byte
        ("DELETE", "/pooled/653885583338803"),  # past the integer column's range
        ("DELETE", "/destroy/instance0001/echo/key%00x"),  # a NUL in a resource id
    ],
)
async def test_inputs_the_database_cannot_hold_are_422(
    services_db_url: str, tmp_path: Path, method: str, path: str
) -> None:
    settings = Settings(
        environment="test",
        database_url=services_db_url,
        api_key=AUTH["Authorization"].removeprefix("Bearer "),
        local_data_dir=str(tmp_path),
        sweep_interval_seconds=0,
    )
    async with running(create_app(settings)) as client:
        response = await client.request(method, path, headers=AUTH)
    assert response.status_code == 422, response.text


ASTRAL = "".join(chr(0x10000 + (i * 7919) % 0xF000) for i in range(1982))
# Raw JSON texts, so the escapes and non-finite literals reach the server as an attacker sends them.
HOSTILE_CLAIMS = {
    "NUL in instructions": '{"agentName": "Ada", "instructions": "hi\\u0000there"}',
    "NUL in agentName": '{"agentName": "A\\u0000da", "instructions": "hi"}',
    "NUL in a metadata value": '{"agentName": "Ada", "instructions": "hi", "metadata": {"k": "a\\u0000"}}',
    "NUL in a metadata key": '{"agentName": "Ada", "instructions": "hi", "metadata": {"k\\u0000": 1}}',
    "NaN in metadata": '{"agentName": "Ada", "instructions": "hi", "metadata": {"k": NaN}}',
    "Infinity in metadata": '{"agentName": "Ada", "instructions": "hi", "metadata": {"k": [-Infinity]}}',
    "lone surrogate in metadata": '{"agentName": "Ada", "instructions": "hi", "metadata": {"k": "\\ud800"}}',
    "lone surrogate in agentName": '{"agentName": "A\\udfffda", "instructions": "hi"}',
    "NUL in joinUrl": '{"agentName": "Ada", "instructions": "hi", "joinUrl": "https://x.example/j\\u0000"}',
    # 2,000 characters but ~8,000 UTF-8 bytes (varied, so compression does not shrink them): past
    # what the joinUrl btree index can hold.
    "astral joinUrl": json.dumps(
        {"agentName": "Ada", "instructions": "hi", "joinUrl": "https://x.example/" + ASTRAL}
    ),
    "NUL in profileImage": '{"agentName": "Ada", "instructions": "hi", "profileImage": "https://x/\\u0000"}',
    "metadata nested past its depth": json.dumps(
        {
            "agentName": "Ada",
            "instructions": "hi",
            "metadata": {"k": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]},
        }
    ),
}


@pytest.mark.parametrize("body", HOSTILE_CLAIMS.values(), ids=HOSTILE_CLAIMS.keys())
async def test_a_claim_with_text_postgresql_cannot_store_is_422_and_provisions_nothing(
    make_settings: Callable[..., PoolSettings],
    fleet: FakeFleet,
    fake_services: FakeServices,
    sessionmaker: async_sessionmaker[AsyncSession],
    body: str,
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
    app = create_pool_app(make_settings(services_url=fake_services.url))
    async with running_pool(app) as client:
        response = await client.post(
            "/api/pool/claim", content=body, headers={**POOL_AUTH, "Content-Type": "application/json"}
        )

    assert response.status_code == 422, response.text
    assert response.json()["detail"], response.text
    assert fleet.agents[instance_id].provisions == 0
    async with sessionmaker() as session:
        statuses = (await session.execute(select(Instance.id, Instance.status))).all()
        claims = (await session.scalars(select(Claim))).all()
    assert [tuple(row) for row in statuses] == [(instance_id, "idle")]
    assert list(claims) == []


async def post_raw(url: str, path: str, size: int, *, chunked: bool) -> int:
    """POST `size` bytes, without credentials, the way a hostile client would: keep sending until
    the server answers; return the answer's status."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: pool\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
    )
    block = b"a" * 65536
    framed = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block

    async def send_body() -> None:
        with contextlib.suppress(ConnectionError, OSError):
            for _ in range(size // len(block)):
                writer.write(framed)
                await writer.drain()
            writer.write(b"0\r\n\r\n" if chunked else b"")
            await writer.drain()

    sender = asyncio.create_task(send_body())
    try:
        status_line = await asyncio.wait_for(reader.readline(), timeout=60)
    finally:
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
        writer.close()
    return int(status_line.split()[1])


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_unauthenticated_40_mib_claim_is_413_without_being_held_in_memory(
    make_settings: Callable[..., PoolSettings], fake_services: FakeServices, chunked: bool
) -> None:
    app = create_pool_app(make_settings(services_url=fake_services.url))
    async with serve(app) as url:
        tracemalloc.start()
        try:
            status = await post_raw(url, "/api/pool/claim", 40 * 1024 * 1024, chunked=chunked)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    assert status == 413
    # Before the limit the body was held whole (twice: its chunks and their join) before the 401.
    assert peak < 8 * 1024 * 1024, f"{peak / 2**20:.1f} MiB traced while refusing the body"


async def test_the_largest_legitimate_claim_fits_under_the_default_body_limit(
    make_settings: Callable[..., PoolSettings],
    fleet: FakeFleet,
    fake_services: FakeServices,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Every field at its bound, written as escapes (the longest a client can make it)."""
    await add_fleet_instances(sessionmaker, fleet, 1)
    url = "https://x.example/" + "a" * 1982
    body = {
        "agentName": "\U0001f600" * 100,
        "instructions": "\U0001f600" * 50_000,
        "joinUrl": url,
        "profileImage": url,
        "metadata": {f"k{i:03}": "\U0001f600" * 1000 for i in range(1)},
        "templateId": "t" * 100,
    }
    content = json.dumps(body, ensure_ascii=True).encode()
    settings = make_settings(services_url=fake_services.url)
    assert len(content) < settings.max_body_bytes
    async with running_pool(create_pool_app(settings)) as client:
        response = await client.post(
            "/api/pool/claim", content=content, headers={**POOL_AUTH, "Content-Type": "application/json"}
        )
    # Past the body limit: the template is unknown (404), not a 413.
    assert response.status_code != 413, response.text
