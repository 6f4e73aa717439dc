"""200 concurrent claims against 150 idle instances, over real HTTP, on one and on two pool apps."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from pool.models import Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances
from tests.support import serve

pytestmark = pytest.mark.slow

IDLE, CLAIMS = 150, 200


@contextlib.asynccontextmanager
async def pool_apps(make_settings: Callable[..., Settings], count: int) -> AsyncIterator[list[str]]:
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serve(create_app(make_settings()))) for _ in range(count)]
        yield urls


async def burst(urls: list[str]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CLAIMS + 10)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        return await asyncio.gather(
            *(
                http.post(
                    f"{urls[n % len(urls)]}/api/pool/claim",
                    json={"agentName": f"agent {n}", "instructions": "hi"},
                    headers=AUTH,
                )
                for n in range(CLAIMS)
            )
        )


async def check_outcome(
    responses: list[httpx.Response], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    codes = Counter(r.status_code for r in responses)
    assert codes == {200: IDLE, 503: CLAIMS - IDLE}, codes
    won = [r.json()["instanceId"] for r in responses if r.status_code == 200]
    assert len(set(won)) == IDLE
    # Each instance was provisioned exactly once: nothing was ever handed to two claims.
    assert all(agent.provisions == 1 for agent in fleet.agents.values())
    async with sessionmaker() as session:
        rows = (await session.scalars(select(Instance))).all()
    assert Counter(row.status for row in rows) == {"claimed": IDLE}
    by_id = {row.id: row for row in rows}
    for response in responses:
        if response.status_code == 200:
            body = response.json()
            assert by_id[body["instanceId"]].agent_name == body["agentName"]
            assert by_id[body["instanceId"]].conversation_id == body["conversationId"]
        else:
            assert response.json()["kind"] == "Unavailable"
            assert response.headers["Retry-After"]


@pytest.mark.parametrize("apps", [1, 2])
async def test_concurrent_claims_never_share_an_instance(
    apps: int,
    make_settings: Callable[..., Settings],
    fleet: FakeFleet,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_fleet_instances(sessionmaker, fleet, IDLE)
    async with pool_apps(make_settings, apps) as urls:
        responses = await burst(urls)
    await check_outcome(responses, fleet, sessionmaker)
