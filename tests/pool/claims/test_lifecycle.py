"""The claim record's closed lifecycle (DESIGN.md §3 step 2, §14.2-3): `pending → succeeded | failed`,
every transition conditional on `pending`; an outcome recorded once is replayed to every retry; no
retry loops without a deadline; nothing attaches an instance to an ended claim; a live claim is
never released as stale; a crashed agent keeps its joinUrl."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from pool.models import Claim, Instance
from shared.errors import error_body
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH, FakeServices, running
from tests.pool.factories import add_fleet_instances

BODY = {"agentName": "Ada", "instructions": "Be kind."}


async def statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        return {i.id: i.status for i in (await session.scalars(select(Instance))).all()}


async def claim_rows(sessionmaker: async_sessionmaker[AsyncSession]) -> list[Claim]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(Claim).order_by(Claim.created_at))).all())


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_finding_1_a_retry_of_a_claim_ended_by_a_kill_replays_its_failure_within_the_deadline(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [first] = await add_fleet_instances(sessionmaker, fleet, 1, provision_delay=1.5)
    headers = {**AUTH, "Idempotency-Key": "killed-1"}
    original = asyncio.create_task(client.post("/api/pool/claim", json=BODY, headers=headers))
    await until(lambda: fleet.agents[first].provisions == 1)
    killed = await client.delete(f"/api/pool/instances/{first}", headers=AUTH)
    assert killed.status_code == 200

    started = time.monotonic()
    # Before the fix this spun (no sleep, no deadline) for as long as anyone waited.
    retry = await asyncio.wait_for(client.post("/api/pool/claim?wait=0", json=BODY, headers=headers), 5)

    assert time.monotonic() - started < 2
    assert retry.status_code == 502
    assert retry.json() == error_body(
        "UpstreamError", "the claim ended: its instance was removed while it was being provisioned"
    )
    answer = await original
    # The first request gets the same recorded outcome; nothing else was provisioned.
    assert (answer.status_code, answer.json()) == (502, retry.json())
    assert [c.status for c in await claim_rows(sessionmaker)] == ["failed"]
    assert fleet.agents[first].provisions == 1


async def test_finding_2_a_claim_ended_by_a_kill_takes_no_other_instance_and_never_joins_twice(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [i1] = await add_fleet_instances(sessionmaker, fleet, 1, provision_delay=1.0)
    [i2] = await add_fleet_instances(sessionmaker, fleet, 1)
    [i3] = await add_fleet_instances(sessionmaker, fleet, 1)
    body = {**BODY, "joinUrl": "https://convos.example/join/revive"}
    a = asyncio.create_task(client.post("/api/pool/claim", json=body, headers=AUTH))
    await until(lambda: fleet.agents[i1].provisions == 1)
    assert (await client.delete(f"/api/pool/instances/{i1}", headers=AUTH)).status_code == 200

    b = await client.post("/api/pool/claim", json=body, headers=AUTH)
    assert b.status_code == 200, b.text
    assert b.json()["instanceId"] == i2
    answer = await a

    # Before the fix: A fell back to I3, which joined the URL too, then A answered 500 and I3
    # stayed `claiming` for good.
    assert answer.status_code == 502, answer.text
    assert await statuses(sessionmaker) == {i2: "claimed", i3: "idle"}
    assert fleet.agents[i3].provisions == 0
    # A's late provision of I1 was undone (reset; a real I1 is destroyed by the kill anyway).
    assert [iid for iid, agent in fleet.agents.items() if agent.invite_url == body["joinUrl"]] == [i2]
    assert sorted(c.status for c in await claim_rows(sessionmaker)) == ["failed", "succeeded"]


async def test_finding_10_a_crashed_agent_keeps_its_join_url_until_it_is_dismissed(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = await add_fleet_instances(sessionmaker, fleet, 3)
    body = {**BODY, "joinUrl": "https://convos.example/join/crash"}
    first = await client.post("/api/pool/claim", json=body, headers=AUTH)
    crashed = first.json()["instanceId"]
    # What the tick writes when the platform reports the claimed agent's deploy crashed; it writes
    # `claimed` again once it sees the agent serving its conversation.
    async with sessionmaker() as session, session.begin():
        (await session.get(Instance, crashed)).status = "crashed"  # type: ignore[union-attr]

    again = await client.post("/api/pool/claim", json=body, headers=AUTH)

    # Before the fix a second agent joined the same conversation.
    assert again.status_code == 200
    assert again.json() == first.json()
    assert sum(agent.provisions for agent in fleet.agents.values()) == 1
    # Dismissing the crashed agent (an operator's decision) frees the joinUrl.
    assert (await client.delete(f"/api/pool/crashed/{crashed}", headers=AUTH)).status_code == 200
    after = await client.post("/api/pool/claim", json=body, headers=AUTH)
    assert after.status_code == 200
    assert after.json()["instanceId"] in set(ids) - {crashed}


async def test_finding_5_a_slow_but_live_claim_is_never_released_by_the_tick(
    make_settings: Callable[..., Settings],
    fake_services: FakeServices,
    fleet: FakeFleet,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    # Each instance call takes 1.5 s, under its 2 s timeout: a failed provision, its reset and its
    # status check, then a provision on a second instance: ~6 s, within a claim's worst case. The
    # old bound (2 × 2 s + 0.5 s = 4.5 s) released it mid-flight; the new one is 2 × 3 × 2 + 0.5.
    [broken] = await add_fleet_instances(
        sessionmaker, fleet, 1, fail_provision=True, provision_delay=1.5, reset_delay=1.5, status_delay=1.5
    )
    [good] = await add_fleet_instances(sessionmaker, fleet, 1, provision_delay=1.5)
    settings = make_settings(
        services_url=fake_services.url,
        tick_enabled=True,
        tick_interval_seconds=0.2,
        min_idle=0,
        claim_provision_timeout_seconds=2.0,
        claim_duplicate_wait_seconds=0.5,
        claim_stale_margin_seconds=0,  # the worst case alone must cover it
    )
    async with running(create_app(settings)) as client:
        response = await client.post("/api/pool/claim", json=BODY, headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json()["instanceId"] == good
    assert await statuses(sessionmaker) == {broken: "idle", good: "claimed"}
    assert [c.status for c in await claim_rows(sessionmaker)] == ["succeeded"]
