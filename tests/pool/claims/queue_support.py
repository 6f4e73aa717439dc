"""What the claim-queue tests share: a pool app served over real HTTP, and reading the queue back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool import locks
from pool.config import Settings
from pool.main import create_app
from pool.models import Claim
from pool.tick.state import FLEET
from shared.db import libpq_url
from tests.pool.conftest import AUTH
from tests.support import serve

BODY = {"agentName": "Ada", "instructions": "Be kind."}


@contextlib.asynccontextmanager
async def pool_http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """One pool replica over real HTTP (uvicorn), with the operator's bearer key."""
    async with (
        serve(create_app(settings)) as url,
        httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as http,
    ):
        yield http


async def enqueue(http: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    response = await http.post("/api/pool/claims", json={**BODY, **extra})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


async def until(
    http: httpx.AsyncClient, claim_id: str, status: str, *, within: float = 10.0
) -> dict[str, Any]:
    """The claim's ticket once it has `status` (polled over HTTP), failing after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        response = await http.get(f"/api/pool/claims/{claim_id}")
        assert response.status_code == 200, response.text
        ticket: dict[str, Any] = response.json()
        if ticket["status"] == status:
            return ticket
        assert time.monotonic() < deadline, f"claim still {ticket['status']}, wanted {status}"
        await asyncio.sleep(0.1)


async def claim_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Claim]:
    async with sessionmaker() as session:
        return {c.id: c for c in (await session.scalars(select(Claim))).all()}


@contextlib.asynccontextmanager
async def queue_held(database_url: str) -> AsyncIterator[None]:
    """Hold the queue's dispatch lock from outside: no replica can assign until it is let go."""
    connection = await asyncpg.connect(libpq_url(database_url))
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", locks.claim_queue(FLEET))
        yield
    finally:
        await connection.close()
