from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.models import Claim, Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances

BODY = {"agentName": "Ada", "instructions": "Be kind."}


async def statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        return {i.id: i.status for i in (await session.scalars(select(Instance))).all()}


async def test_a_failed_provision_resets_the_instance_and_claims_another(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [broken] = await add_fleet_instances(sessionmaker, fleet, 1, fail_provision=True)
    [good] = await add_fleet_instances(sessionmaker, fleet, 1)

    response = await client.post("/api/pool/claim", json=BODY, headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json()["instanceId"] == good
    # The reset made it clean again, so it goes back to the pool rather than to the graveyard.
    assert await statuses(sessionmaker) == {broken: "idle", good: "claimed"}
    assert fleet.agents[broken].resets == 1


async def test_an_instance_that_stays_dirty_after_reset_is_marked_dead(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [broken] = await add_fleet_instances(sessionmaker, fleet, 1, fail_provision=True, stay_dirty=True)
    [good] = await add_fleet_instances(sessionmaker, fleet, 1)

    response = await client.post("/api/pool/claim", json=BODY, headers=AUTH)

    assert response.status_code == 200
    assert await statuses(sessionmaker) == {broken: "dead", good: "claimed"}


async def test_two_failed_provisions_answer_502_and_try_no_third_instance(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    broken = await add_fleet_instances(sessionmaker, fleet, 2, fail_provision=True, stay_dirty=True)
    [spare] = await add_fleet_instances(sessionmaker, fleet, 1)

    response = await client.post("/api/pool/claim", json=BODY, headers={**AUTH, "Idempotency-Key": "f-1"})

    assert response.status_code == 502
    assert response.json()["error"] == "UpstreamError"
    assert response.json()["detail"].startswith("provisioning failed on 2 instance(s)")
    assert await statuses(sessionmaker) == {broken[0]: "dead", broken[1]: "dead", spare: "idle"}
    assert fleet.agents[spare].provisions == 0
    async with sessionmaker() as session:
        assert (await session.scalars(select(Claim))).all() == []
    # Nothing was handed out, so the same key may try again and now succeeds.
    retry = await client.post("/api/pool/claim", json=BODY, headers={**AUTH, "Idempotency-Key": "f-1"})
    assert retry.status_code == 200
    assert retry.json()["instanceId"] == spare


async def test_an_unreachable_instance_is_marked_dead(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [gone] = await add_fleet_instances(sessionmaker, fleet, 1)
    del fleet.agents[gone]  # the fleet answers 404 for it now, as a vanished instance would

    response = await client.post("/api/pool/claim", json=BODY, headers=AUTH)

    assert response.status_code == 502
    assert await statuses(sessionmaker) == {gone: "dead"}
    async with sessionmaker() as session:
        row = await session.get(Instance, gone)
    assert row is not None and row.last_error is not None and "provision failed" in row.last_error
    assert "pool_gw_" not in row.last_error


async def test_a_claim_abandoned_mid_provision_is_released_and_its_instance_condemned(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    from datetime import UTC, datetime, timedelta

    [stuck] = await add_fleet_instances(sessionmaker, fleet, 1, status="claiming")
    join = "https://convos.example/join/stuck"
    async with sessionmaker() as session, session.begin():
        session.add(
            Claim(
                id="c" * 32,
                request_hash="h",
                join_url=join,
                instance_id=stuck,
                status="pending",
                created_at=datetime.now(UTC) - timedelta(minutes=10),
            )
        )
    [fresh] = await add_fleet_instances(sessionmaker, fleet, 1, status="starting")

    empty = await client.post(
        "/api/pool/claim", json={**BODY, "joinUrl": "https://x.example/other"}, headers=AUTH
    )

    assert empty.status_code == 503
    assert await statuses(sessionmaker) == {stuck: "dead", fresh: "starting"}
    async with sessionmaker() as session:
        claim = await session.get(Claim, "c" * 32)
    assert claim is not None and claim.status == "released"
