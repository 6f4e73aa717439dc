from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.models import Claim, Instance
from shared.errors import error_body
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances

BODY = {"agentName": "Ada", "instructions": "Be kind."}


async def rows(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Instance]:
    async with sessionmaker() as session:
        return {i.id: i for i in (await session.scalars(select(Instance))).all()}


async def test_claim_provisions_an_idle_instance_and_stores_the_claim(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)

    response = await client.post("/api/pool/claim", json={**BODY, "metadata": {"team": "x"}}, headers=AUTH)

    assert response.status_code == 200, response.text
    agent = fleet.agents[instance_id]
    assert response.json() == {
        "inviteUrl": agent.invite_url,
        "conversationId": agent.conversation_id,
        "instanceId": instance_id,
        "joined": False,
        "status": "created",
        "agentName": "Ada",
    }
    row = (await rows(sessionmaker))[instance_id]
    assert (row.status, row.agent_name, row.instructions) == ("claimed", "Ada", "Be kind.")
    assert (row.conversation_id, row.invite_url, row.metadata_) == (
        agent.conversation_id,
        agent.invite_url,
        {"team": "x"},
    )
    assert row.claimed_at is not None


async def test_claim_joins_a_conversation_by_join_url(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
    join = "https://convos.example/join/abc"

    response = await client.post("/api/pool/claim", json={**BODY, "joinUrl": join}, headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json()["inviteUrl"] == join
    assert (response.json()["joined"], response.json()["status"]) == (True, "joined")
    assert (await rows(sessionmaker))[instance_id].join_url == join


async def test_claim_on_an_empty_pool_answers_503_with_retry_after(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/pool/claim", json=BODY, headers=AUTH)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == error_body("Unavailable", "no idle instance available; retry later")


async def test_claim_never_hands_out_starting_claimed_or_tainted_instances(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    for status in (
        "creating",
        "starting",
        "claiming",
        "claimed",
        "pending_acceptance",
        "tainted",
        "crashed",
        "dead",
        "sleeping",
    ):
        await add_fleet_instances(sessionmaker, fleet, 1, status=status)

    response = await client.post("/api/pool/claim", json=BODY, headers=AUTH)

    assert response.status_code == 503
    assert all(agent.provisions == 0 for agent in fleet.agents.values())


async def test_claim_requires_the_pool_api_key(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = await client.post("/api/pool/claim", json=BODY, headers=headers)
        assert response.status_code == 401
        assert response.json() == error_body("Unauthorized", "missing or invalid bearer token")


async def test_claim_rejects_bad_input_with_json_errors(client: httpx.AsyncClient) -> None:
    # An empty body and unknown fields are fine (the original's defaults; extra fields ignored).
    cases = [
        [],
        {"agentName": "", "instructions": "x"},
        {"agentName": "a", "instructions": "x", "joinUrl": "not a url"},
        {"agentName": "a", "instructions": 7},
        {"agentName": "a", "instructions": "x", "metadata": {"big": "x" * 20_000}},
    ]
    for body in cases:
        response = await client.post("/api/pool/claim", json=body, headers=AUTH)
        assert response.status_code == 422, body
        assert isinstance(response.json()["detail"], list)
        assert response.json()["kind"] == "ValidationError"
    response = await client.post(
        "/api/pool/claim", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_claim_rejects_a_wait_beyond_the_maximum(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/pool/claim?wait=31", json=BODY, headers=AUTH)
    assert response.status_code == 400
    assert response.json() == error_body("BadRequest", "wait must be between 0 and 30 seconds")
    response = await client.post("/api/pool/claim?wait=soon", json=BODY, headers=AUTH)
    assert response.status_code == 422


async def test_claim_with_wait_gets_an_instance_that_becomes_idle_meanwhile(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    import asyncio

    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1, status="starting")

    async def promote_later() -> None:
        await asyncio.sleep(0.5)
        async with sessionmaker() as session, session.begin():
            (await session.get(Instance, instance_id)).status = "idle"  # type: ignore[union-attr]

    promoter = asyncio.create_task(promote_later())
    response = await client.post("/api/pool/claim?wait=5", json=BODY, headers=AUTH)
    await promoter

    assert response.status_code == 200, response.text
    assert response.json()["instanceId"] == instance_id


async def test_claim_with_wait_still_answers_503_when_nothing_frees_up(client: httpx.AsyncClient) -> None:
    import time

    started = time.monotonic()
    response = await client.post("/api/pool/claim?wait=1", json=BODY, headers=AUTH)

    assert response.status_code == 503
    assert 1.0 <= time.monotonic() - started < 3.0


async def test_claim_rows_are_kept_for_dedupe(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
    response = await client.post("/api/pool/claim", json=BODY, headers={**AUTH, "Idempotency-Key": "k-1"})
    assert response.status_code == 200
    async with sessionmaker() as session:
        [claim] = (await session.scalars(select(Claim))).all()
    assert (claim.idempotency_key, claim.instance_id, claim.status) == ("k-1", instance_id, "succeeded")
    assert claim.response == response.json()
