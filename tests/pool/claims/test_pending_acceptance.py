from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.models import Instance
from shared.errors import error_body
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances

BODY = {"agentName": "Ada", "instructions": "Be kind.", "joinUrl": "https://convos.example/join/p"}


async def status_of(sessionmaker: async_sessionmaker[AsyncSession], instance_id: str) -> str | None:
    async with sessionmaker() as session:
        row = await session.get(Instance, instance_id)
        return row.status if row else None


async def claim_pending(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> tuple[str, str]:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1, join_pending=True)
    response = await client.post("/api/pool/claim", json=BODY, headers=AUTH)
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["joined"]) == ("pending_acceptance", False)
    assert await status_of(sessionmaker, instance_id) == "pending_acceptance"
    return instance_id, fleet.agents[instance_id].token


async def test_the_instance_completes_its_pending_acceptance_with_its_own_token(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    instance_id, token = await claim_pending(client, fleet, sessionmaker)

    response = await client.post(
        "/api/pool/pending-acceptance/complete",
        json={"instanceId": instance_id},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200
    assert response.json() == {"instanceId": instance_id, "status": "claimed", "changed": True}
    assert await status_of(sessionmaker, instance_id) == "claimed"


async def test_a_failed_acceptance_marks_the_instance_dead_and_frees_the_join_url(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    instance_id, token = await claim_pending(client, fleet, sessionmaker)

    response = await client.post(
        "/api/pool/pending-acceptance/fail",
        json={"instanceId": instance_id},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 200
    assert await status_of(sessionmaker, instance_id) == "dead"
    [other] = await add_fleet_instances(sessionmaker, fleet, 1)
    again = await client.post("/api/pool/claim", json=BODY, headers=AUTH)
    assert again.json()["instanceId"] == other


async def test_another_instances_token_or_the_admin_key_is_refused(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    instance_id, _ = await claim_pending(client, fleet, sessionmaker)
    [other] = await add_fleet_instances(sessionmaker, fleet, 1)
    for headers in (
        {"Authorization": f"Bearer {fleet.agents[other].token}"},
        AUTH,
        {},
    ):
        response = await client.post(
            "/api/pool/pending-acceptance/complete", json={"instanceId": instance_id}, headers=headers
        )
        assert response.status_code == 401
        assert response.json() == error_body("Unauthorized", "missing or invalid instance token")
    assert await status_of(sessionmaker, instance_id) == "pending_acceptance"


async def test_completing_an_instance_that_is_not_pending_is_a_conflict(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)

    response = await client.post(
        "/api/pool/pending-acceptance/complete",
        json={"instanceId": instance_id},
        headers={"Authorization": f"Bearer {fleet.agents[instance_id].token}"},
    )

    assert response.status_code == 409
    assert response.json() == error_body("Conflict", "instance is idle, not pending_acceptance")
    bad = await client.post(
        "/api/pool/pending-acceptance/complete", json={"instanceId": "NOPE"}, headers=AUTH
    )
    assert bad.status_code == 422
