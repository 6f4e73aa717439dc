"""500 claims at concurrency 100 against 300 idle instances, on two pool replicas sharing one
database, over real HTTP: 300 distinct winners, 200 clean 503s, nothing shared, nothing stuck.

(tests/pool/claims/test_concurrency.py runs 200 unbounded claims against 150; this is the
issue's figure, with the concurrency bounded as a real client fleet would be.)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from pool.models import Claim, Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances
from tests.support import serve

IDLE, CLAIMS, CONCURRENCY, REPLICAS = 300, 500, 100, 2


async def claim_all(urls: list[str]) -> list[httpx.Response]:
    gate = asyncio.Semaphore(CONCURRENCY)
    # A fresh connection per claim: under a loaded loop, a reused keep-alive connection can race
    # uvicorn's 5 s idle close, a client-side artefact this test is not about.
    limits = httpx.Limits(max_connections=CONCURRENCY + 10, max_keepalive_connections=0)

    async with httpx.AsyncClient(limits=limits, timeout=60) as http:

        async def one(n: int) -> httpx.Response:
            async with gate:
                return await http.post(
                    f"{urls[n % len(urls)]}/api/pool/claim",
                    json={"agentName": f"agent {n}", "instructions": "hi"},
                    headers=AUTH,
                )

        return await asyncio.gather(*(one(n) for n in range(CLAIMS)))


async def test_500_claims_at_concurrency_100_on_two_replicas_hand_out_each_instance_once(
    pool_settings: Callable[..., Settings],
    fleet: FakeFleet,
    pool_sessions: async_sessionmaker[AsyncSession],
) -> None:
    ids = await add_fleet_instances(pool_sessions, fleet, IDLE)
    started = time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(serve(create_app(pool_settings()))) for _ in range(REPLICAS)]
        responses = await claim_all(urls)
    elapsed = time.monotonic() - started

    codes = Counter(r.status_code for r in responses)
    assert codes == {200: IDLE, 503: CLAIMS - IDLE}, codes
    winners = [r.json()["instanceId"] for r in responses if r.status_code == 200]
    assert sorted(winners) == sorted(ids)  # 300 distinct: every idle instance, none twice
    for response in responses:
        if response.status_code == 503:
            assert response.json()["kind"] == "Unavailable"
            assert int(response.headers["Retry-After"]) > 0
    # What the instances saw: each was provisioned exactly once, and holds the winner's conversation.
    assert Counter(agent.provisions for agent in fleet.agents.values()) == {1: IDLE}
    async with pool_sessions() as session:
        rows = {row.id: row for row in await session.scalars(select(Instance))}
        claims = list(await session.scalars(select(Claim)))
    assert Counter(row.status for row in rows.values()) == {"claimed": IDLE}  # nothing left `claiming`
    for response in responses:
        if response.status_code == 200:
            body = response.json()
            row = rows[body["instanceId"]]
            assert (row.agent_name, row.conversation_id) == (body["agentName"], body["conversationId"])
            assert fleet.agents[row.id].conversation_id == body["conversationId"]
    # The 503s left no claim row behind; the winners' rows are all settled.
    assert Counter(claim.status for claim in claims) == {"succeeded": IDLE}
    print(f"{CLAIMS} claims at concurrency {CONCURRENCY} on {REPLICAS} replicas: {elapsed:.2f}s")
