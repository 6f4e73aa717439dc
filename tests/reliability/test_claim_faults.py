"""Faults around a claim, each with the invariant it must keep:
- the pool process SIGKILLed mid-claim, then restarted: the abandoned claim fails (the outcome
  its retries get) and its `claiming` instance is recovered (reset: back to idle once clean,
  never left `claiming`, never handed out while it holds the dead claim's conversation);
- services down during a claim: the claim does not need services, and nothing is lost;
- an instance that dies mid-provision: the claim moves on to another instance, the dead one is
  `dead`, never `idle` and never `claiming`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from pool.models import Claim, Instance
from shared.ids import new_instance_id
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import API_KEY, AUTH, FakeServices, running
from tests.pool.factories import ENCRYPTION_KEY, add_fleet_instances, make_instance
from tests.reliability.processes import pool_process, runtime_process
from tests.support import free_port

BODY = {"agentName": "Ada", "instructions": "Be brief."}


async def statuses(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as session:
        return {row.id: row.status for row in await session.scalars(select(Instance))}


async def claim_statuses(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return sorted(claim.status for claim in await session.scalars(select(Claim)))


async def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def test_a_pool_killed_mid_claim_and_restarted_recovers_the_claiming_instance(
    pool_db_url: str,
    fleet: FakeFleet,
    fake_services: FakeServices,
    pool_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    # Oldest first: the claim picks `stuck`, whose provision takes long enough to kill the pool in.
    [stuck] = await add_fleet_instances(pool_sessions, fleet, 1, provision_delay=3.0)
    [spare] = await add_fleet_instances(pool_sessions, fleet, 1)
    env = {
        "POOL_ENVIRONMENT": "test",
        "POOL_DATABASE_URL": pool_db_url,
        "POOL_API_KEY": API_KEY,
        "POOL_SERVICES_URL": fake_services.url,
        "POOL_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "POOL_MIN_IDLE": "0",
        # A claim older than 2 × 3 × 1 s + 1 s + 0 s whose claimant is gone is abandoned.
        "POOL_CLAIM_PROVISION_TIMEOUT_SECONDS": "1",
        "POOL_CLAIM_DUPLICATE_WAIT_SECONDS": "1",
        "POOL_CLAIM_STALE_MARGIN_SECONDS": "0",
        "POOL_TICK_INTERVAL_SECONDS": "0.5",
    }
    log = tmp_path / "pool.log"
    async with pool_process({**env, "POOL_TICK_ENABLED": "false"}, log) as pool:
        async with httpx.AsyncClient(timeout=30) as http:
            claim = asyncio.create_task(http.post(f"{pool.url}/api/pool/claim", json=BODY, headers=AUTH))
            await wait_for(lambda: fleet.agents[stuck].provisions == 1, 10, "the provision to start")
            pool.kill()
            try:
                await claim
            except httpx.HTTPError:
                pass  # the caller saw the connection drop: it never got an instance
            else:
                raise AssertionError("the claim answered although its pool was killed")
    assert await statuses(pool_sessions) == {stuck: "claiming", spare: "idle"}
    assert await claim_statuses(pool_sessions) == ["pending"]

    async with pool_process({**env, "POOL_TICK_ENABLED": "true"}, log) as pool:

        async def recovered() -> bool:
            return (await statuses(pool_sessions))[stuck] != "claiming"

        # No claim arrives meanwhile: recovery must not depend on the pool looking empty.
        await wait_for(recovered, 20, "the abandoned `claiming` instance to be recovered")
        # Half-provisioned (the agent bound a conversation after the pool died): reset, and
        # handed out again only once its runtime says it is clean.
        assert (await statuses(pool_sessions))[stuck] == "idle"
        assert fleet.agents[stuck].resets == 1 and fleet.agents[stuck].conversation_id is None
        assert await claim_statuses(pool_sessions) == ["failed"]
        async with httpx.AsyncClient(timeout=30) as http:
            again = await http.post(f"{pool.url}/api/pool/claim", json=BODY, headers=AUTH)
        assert again.status_code == 200, again.text
        assert again.json()["instanceId"] in (stuck, spare)
    assert "Traceback" not in log.read_text()


async def test_services_down_during_claims_loses_nothing(
    pool_settings: Callable[..., Settings], fleet: FakeFleet, pool_sessions: async_sessionmaker[AsyncSession]
) -> None:
    # Created one after another, so claims take them in this order.
    [broken] = await add_fleet_instances(pool_sessions, fleet, 1, fail_provision=True, stay_dirty=True)
    [good] = await add_fleet_instances(pool_sessions, fleet, 1)
    [flaky] = await add_fleet_instances(pool_sessions, fleet, 1, fail_provision=True)
    nobody = f"http://127.0.0.1:{free_port()}"  # services is down: connections are refused
    settings = pool_settings(services_url=nobody, tick_enabled=True, tick_interval_seconds=0.2, min_idle=1)
    async with running(create_app(settings)) as client:
        first = await client.post("/api/pool/claim", json=BODY, headers=AUTH)
        # `broken` failed and stayed dirty → dead; the claim moved on to `good`.
        assert first.status_code == 200, first.text
        assert first.json()["instanceId"] == good
        second = await client.post("/api/pool/claim", json=BODY, headers=AUTH)
        # `flaky` failed but reset clean → idle again; `broken` is dead: no second try → 502.
        assert second.status_code == 502, second.text
        assert second.json()["kind"] == "UpstreamError"

        async def tick_saw_services_down() -> bool:
            loop = (await client.get("/api/pool/status", headers=AUTH)).json()["loop"]
            return "services unreachable" in (loop["lastError"] or "")

        # Ticks run meanwhile, fail to observe, and change nothing. The refills the claims woke
        # cannot reach services: their reservations stay `creating` (services may hold them
        # after all; the tick hands them over again and drops them only after its bound, see
        # tests/pool/tick/test_plan.py), never more than the deficit.
        await wait_for(tick_saw_services_down, 15, "a tick to report services unreachable")
    found = await statuses(pool_sessions)
    assert list(found.values()).count("creating") <= 1
    assert {i: s for i, s in found.items() if s != "creating"} == {
        broken: "dead",
        good: "claimed",
        flaky: "idle",
    }
    # The 502 is recorded (a retry of it gets it again), beside the success.
    assert await claim_statuses(pool_sessions) == ["failed", "succeeded"]


async def test_an_instance_that_dies_mid_provision_is_condemned_and_the_claim_moves_on(
    pool_settings: Callable[..., Settings], pool_sessions: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    dying_id, healthy_id = new_instance_id(), new_instance_id()
    async with (
        runtime_process(
            dying_id, "pool_gw_dying0000000000", tmp_path / "dying", RUNTIME_PROVISION_DELAY="5"
        ) as dying,
        runtime_process(healthy_id, "pool_gw_healthy000000000", tmp_path / "healthy") as healthy,
    ):
        async with pool_sessions.begin() as session:
            await make_instance(session, id=dying_id, token="pool_gw_dying0000000000", url=dying.url)
        async with pool_sessions.begin() as session:
            await make_instance(session, id=healthy_id, token="pool_gw_healthy000000000", url=healthy.url)
        async with running(create_app(pool_settings(claim_provision_timeout_seconds=10))) as client:
            claim = asyncio.create_task(client.post("/api/pool/claim", json=BODY, headers=AUTH))

            async def reserved() -> bool:
                return (await statuses(pool_sessions))[dying_id] == "claiming"

            await wait_for(reserved, 10, "the claim to reserve the first instance")
            await asyncio.sleep(0.5)  # the provision request is now held in its 5 s delay
            dying.kill()
            response = await claim
        assert response.status_code == 200, response.text
        assert response.json()["instanceId"] == healthy_id
        async with httpx.AsyncClient() as http:
            bound = await http.get(
                f"{healthy.url}/convos/status", headers={"Authorization": "Bearer pool_gw_healthy000000000"}
            )
        assert bound.json()["conversationId"] == response.json()["conversationId"]
    assert await statuses(pool_sessions) == {dying_id: "dead", healthy_id: "claimed"}
    async with pool_sessions() as session:
        row = await session.get(Instance, dying_id)
    assert row is not None and row.last_error and "provision failed" in row.last_error
