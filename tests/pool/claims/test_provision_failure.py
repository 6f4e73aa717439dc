from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.auth import API_KEY_CALLER
from pool.claims import recovery
from pool.config import Settings
from pool.instance_client import InstanceClient
from pool.models import Claim, Instance
from shared.auth import SecretBox
from shared.errors import error_body
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import ENCRYPTION_KEY, add_fleet_instances

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
    assert response.json()["kind"] == "UpstreamError"
    assert response.json()["detail"].startswith("provisioning failed on 2 instance(s)")
    assert await statuses(sessionmaker) == {broken[0]: "dead", broken[1]: "dead", spare: "idle"}
    assert fleet.agents[spare].provisions == 0
    # Provisioning started, so the failure is the claim's recorded outcome: a retry with the same
    # key gets it again (a new key makes a new claim, which now succeeds).
    async with sessionmaker() as session:
        assert [(c.status, c.response) for c in (await session.scalars(select(Claim))).all()] == [
            ("failed", response.json())
        ]
    retry = await client.post("/api/pool/claim", json=BODY, headers={**AUTH, "Idempotency-Key": "f-1"})
    assert (retry.status_code, retry.json()) == (502, response.json())
    fresh = await client.post("/api/pool/claim", json=BODY, headers={**AUTH, "Idempotency-Key": "f-2"})
    assert fresh.status_code == 200
    assert fresh.json()["instanceId"] == spare


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


async def test_a_claim_abandoned_mid_provision_fails_and_its_instance_is_reset_by_the_tick(
    make_settings: Callable[..., Settings],
    fleet: FakeFleet,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    [stuck] = await add_fleet_instances(sessionmaker, fleet, 1, status="claiming")
    [dirty] = await add_fleet_instances(sessionmaker, fleet, 1, status="claiming", stay_dirty=True)
    fleet.agents[stuck].conversation_id = "conv_half"  # the claimant died after the agent joined
    fleet.agents[dirty].conversation_id = "conv_half2"
    join = "https://convos.example/join/stuck"
    async with sessionmaker() as session, session.begin():
        for n, instance_id in enumerate((stuck, dirty)):
            session.add(
                Claim(
                    id=str(n) * 32,
                    caller=API_KEY_CALLER,
                    idempotency_key=f"k-{n}",
                    request_hash="h",
                    join_url=f"{join}/{n}",
                    instance_id=instance_id,
                    status="pending",
                    created_at=datetime.now(UTC) - timedelta(minutes=10),
                )
            )
    settings = make_settings()
    instances = InstanceClient()
    try:
        # What the tick leader runs before each observation (pool.tick.reconcile).
        done = await recovery.upkeep(sessionmaker, instances, SecretBox(ENCRYPTION_KEY), settings)
    finally:
        await instances.aclose()

    assert done.ended == 2
    # Reset clean → back to idle; still dirty after the reset → dead, for the tick to destroy.
    assert done.recovered == {stuck: "idle", dirty: "dead"}
    assert await statuses(sessionmaker) == {stuck: "idle", dirty: "dead"}
    async with sessionmaker() as session:
        claims = (await session.scalars(select(Claim).order_by(Claim.id))).all()
    assert [c.status for c in claims] == ["failed", "failed"]
    assert claims[0].response == error_body(
        "UpstreamError",
        f"the claim ended: no outcome within {settings.claim_stale_seconds:.0f} s (abandoned mid-provision)",
    )
