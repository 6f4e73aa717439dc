"""Fairness across two pool replicas on one database (DESIGN.md §10): 100 claims against 20 idle
instances, the other 80 arriving as refills, are served in arrival (queue) order, none twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from tests.fakes.fleet import FakeFleet
from tests.pool.claims.queue_support import BODY, claim_rows, pool_http
from tests.pool.factories import add_fleet_instances

pytestmark = pytest.mark.slow

CLAIMS, IDLE, REFILL_BATCH = 100, 20, 10


async def test_claims_are_served_in_arrival_order_none_twice_across_two_replicas(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, IDLE)
    async with contextlib.AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(pool_http(make_settings())) for _ in range(2)]

        async def claim(n: int) -> httpx.Response:
            body = {**BODY, "agentName": f"agent {n}"}
            return await replicas[n % 2].post("/api/pool/claim?wait=30", json=body)

        burst = [asyncio.create_task(claim(n)) for n in range(CLAIMS)]
        # Every claim has arrived (served or queued) before the first refill, however loaded the
        # machine: then at least CLAIMS - IDLE of them must have queued.
        for _ in range(300):
            if len(await claim_rows(sessionmaker)) == CLAIMS:
                break
            await asyncio.sleep(0.1)
        for _ in range((CLAIMS - IDLE) // REFILL_BATCH):
            await add_fleet_instances(sessionmaker, fleet, REFILL_BATCH)
            await asyncio.sleep(0.3)
        responses = await asyncio.gather(*burst)

    assert Counter(r.status_code for r in responses) == {200: CLAIMS}, [r.text for r in responses][:3]
    won = [r.json()["instanceId"] for r in responses]
    assert len(set(won)) == CLAIMS  # no instance handed to two claims
    assert all(agent.provisions == 1 for agent in fleet.agents.values())

    rows = list((await claim_rows(sessionmaker)).values())
    assert Counter(row.status for row in rows) == {"succeeded": CLAIMS}
    queued = sorted((row for row in rows if row.queued_at is not None), key=lambda row: row.queue_seq)
    assert len(queued) >= CLAIMS - IDLE
    # No claim was served before an earlier one still waiting: assignment follows the queue order.
    assigned = [row.assigned_at for row in queued]
    assert assigned == sorted(assigned)
    # And none that skipped the queue was served while an earlier arrival was waiting in it.
    for direct in (row for row in rows if row.queued_at is None):
        for waiting in queued:
            assert waiting.assigned_at is not None
            assert not (waiting.queued_at < direct.created_at < waiting.assigned_at)
