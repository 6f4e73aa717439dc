from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.models import Instance
from shared.errors import error_body
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances

BODY = {"agentName": "Ada", "instructions": "Be kind."}


async def statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        return {i.id: i.status for i in (await session.scalars(select(Instance))).all()}


async def test_a_retry_with_the_same_idempotency_key_returns_the_same_instance(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 3)
    headers = {**AUTH, "Idempotency-Key": "retry-1"}

    first = await client.post("/api/pool/claim", json=BODY, headers=headers)
    second = await client.post("/api/pool/claim", json=BODY, headers=headers)

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()
    assert sorted((await statuses(sessionmaker)).values()) == ["claimed", "idle", "idle"]
    assert sum(agent.provisions for agent in fleet.agents.values()) == 1


async def test_an_idempotency_key_reused_for_another_request_is_refused(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 2)
    headers = {**AUTH, "Idempotency-Key": "retry-2"}
    assert (await client.post("/api/pool/claim", json=BODY, headers=headers)).status_code == 200

    response = await client.post("/api/pool/claim", json={**BODY, "agentName": "Bob"}, headers=headers)

    assert response.status_code == 409
    assert response.json() == error_body(
        "Conflict", "Idempotency-Key was already used for a different claim request"
    )


async def test_a_bad_idempotency_key_is_a_4xx(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/pool/claim", json=BODY, headers={**AUTH, "Idempotency-Key": "x" * 201})
    assert response.status_code == 422


async def test_concurrent_retries_with_the_same_key_get_one_instance(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = await add_fleet_instances(sessionmaker, fleet, 5)
    for instance_id in ids:
        fleet.agents[instance_id].provision_delay = 0.3
    headers = {**AUTH, "Idempotency-Key": "burst-1"}

    responses = await asyncio.gather(
        *(client.post("/api/pool/claim", json=BODY, headers=headers) for _ in range(10))
    )

    assert [r.status_code for r in responses] == [200] * 10
    assert len({r.json()["instanceId"] for r in responses}) == 1
    assert list((await statuses(sessionmaker)).values()).count("claimed") == 1
    assert sum(agent.provisions for agent in fleet.agents.values()) == 1


async def test_the_same_join_url_while_active_returns_the_first_claim(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    ids = await add_fleet_instances(sessionmaker, fleet, 4)
    for instance_id in ids:
        fleet.agents[instance_id].provision_delay = 0.2
    body = {**BODY, "joinUrl": "https://convos.example/join/xyz"}

    responses = await asyncio.gather(
        *(client.post("/api/pool/claim", json=body, headers=AUTH) for _ in range(5))
    )
    later = await client.post("/api/pool/claim", json=body, headers=AUTH)

    assert [r.status_code for r in responses] + [later.status_code] == [200] * 6
    assert len({r.json()["instanceId"] for r in [*responses, later]}) == 1
    assert list((await statuses(sessionmaker)).values()).count("claimed") == 1


async def test_a_join_url_can_be_claimed_again_once_its_instance_is_gone(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 2)
    body = {**BODY, "joinUrl": "https://convos.example/join/again"}
    first = await client.post("/api/pool/claim", json=body, headers=AUTH)
    first_id = first.json()["instanceId"]
    async with sessionmaker() as session, session.begin():
        (await session.get(Instance, first_id)).status = "dead"  # type: ignore[union-attr]

    second = await client.post("/api/pool/claim", json=body, headers=AUTH)

    assert second.status_code == 200
    assert second.json()["instanceId"] != first_id
