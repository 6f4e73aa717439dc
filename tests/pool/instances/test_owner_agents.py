"""`GET /api/pool/agents?ownerId=`: one owner's live agents (claimed, pending acceptance, being
claimed), with their template, version and lineage; real claims over the fake fleet."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.models import Claim
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances, make_instance


async def test_an_owners_live_agents_and_nothing_else(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 3)
    mine = await client.post(
        "/api/pool/claim", json={"agentName": "Ada", "instructions": "x", "ownerId": "user:1"}, headers=AUTH
    )
    theirs = await client.post(
        "/api/pool/claim", json={"agentName": "Bo", "instructions": "x", "ownerId": "user:2"}, headers=AUTH
    )
    anonymous = await client.post(
        "/api/pool/claim", json={"agentName": "Cy", "instructions": "x"}, headers=AUTH
    )
    assert {mine.status_code, theirs.status_code, anonymous.status_code} == {200}
    async with sessionmaker() as session, session.begin():
        # Being claimed for user:1 right now: the pending claim names the owner, the row not yet.
        claiming = await make_instance(session, status="claiming")
        session.add(
            Claim(
                id=uuid.uuid4().hex,
                caller="operator",
                request_hash="h",
                status="pending",
                instance_id=claiming.id,
                owner_id="user:1",
            )
        )
        pending = await make_instance(
            session,
            status="pending_acceptance",
            owner_id="user:1",
            template_id="default",
            template_version=1,
            parent_instance=mine.json()["instanceId"],
        )
        # Not live: crashed, or dead on its way out.
        await make_instance(session, status="crashed", owner_id="user:1")
        await make_instance(session, status="dead", owner_id="user:1")

    listed = await client.get("/api/pool/agents", params={"ownerId": "user:1"}, headers=AUTH)

    assert listed.status_code == 200, listed.text
    agents = {a["id"]: a for a in listed.json()}
    assert set(agents) == {mine.json()["instanceId"], claiming.id, pending.id}
    first = agents[mine.json()["instanceId"]]
    assert (first["status"], first["agentName"], first["ownerId"]) == ("claimed", "Ada", "user:1")
    assert (first["templateId"], first["templateVersion"], first["claimedAt"] is not None) == (
        "default",
        1,
        True,
    )
    assert (agents[claiming.id]["status"], agents[claiming.id]["ownerId"]) == ("claiming", "user:1")
    assert agents[pending.id]["parentInstance"] == mine.json()["instanceId"]
    # The owner-less list is what it was: every bound instance, crashed ones included.
    everyone = {a["id"] for a in (await client.get("/api/pool/agents", headers=AUTH)).json()}
    assert theirs.json()["instanceId"] in everyone and anonymous.json()["instanceId"] in everyone
    assert claiming.id not in everyone
    nobody = await client.get("/api/pool/agents", params={"ownerId": "user:3"}, headers=AUTH)
    assert nobody.json() == []


async def test_an_owner_id_is_checked_like_the_claims(client: httpx.AsyncClient) -> None:
    for bad in ("", "has space", "x" * 201, "semi;colon"):
        response = await client.get("/api/pool/agents", params={"ownerId": bad}, headers=AUTH)
        assert response.status_code == 422, bad
        assert response.json()["kind"] == "ValidationError"
        assert "ownerId" in response.json()["error"]
