from __future__ import annotations

import asyncio

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.claims.db import ALONE_IN_FLIGHT
from pool.models import STATUSES, Claim, Instance
from shared.errors import error_body
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH, FakeServices
from tests.pool.factories import add_fleet_instances

BODY = {"agentName": "Ada", "instructions": "Be kind."}


async def statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        return {i.id: i.status for i in (await session.scalars(select(Instance))).all()}


async def test_every_operator_route_requires_the_api_key(client: httpx.AsyncClient) -> None:
    routes = [
        ("GET", "/api/pool/counts"),
        ("GET", "/api/pool/agents"),
        ("GET", "/api/pool/status"),
        ("GET", "/api/pool/instances"),
        ("POST", "/api/pool/replenish"),
        ("POST", "/api/pool/drain"),
        ("DELETE", "/api/pool/instances/abcdefghijkl"),
        ("DELETE", "/api/pool/crashed/abcdefghijkl"),
        ("POST", "/api/pool/recheck/abcdefghijkl"),
        ("POST", "/api/pool/reconcile"),
    ]
    for method, path in routes:
        response = await client.request(method, path, headers={"Authorization": "Bearer nope"})
        assert response.status_code == 401, path
        assert response.json()["kind"] == "Unauthorized"


async def test_counts_always_lists_every_status(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    empty = await client.get("/api/pool/counts", headers=AUTH)
    assert empty.json() == dict.fromkeys(STATUSES, 0)
    await add_fleet_instances(sessionmaker, fleet, 2)
    await add_fleet_instances(sessionmaker, fleet, 1, status="crashed")

    counts = (await client.get("/api/pool/counts", headers=AUTH)).json()

    assert counts == {**dict.fromkeys(STATUSES, 0), "idle": 2, "crashed": 1}


async def test_status_and_agents_show_the_pool_without_secrets(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 2)
    claimed = (await client.post("/api/pool/claim", json=BODY, headers=AUTH)).json()["instanceId"]

    status = await client.get("/api/pool/status", headers=AUTH)
    agents = await client.get("/api/pool/agents", headers=AUTH)

    assert status.status_code == agents.status_code == 200
    body = status.json()
    assert body["counts"]["claimed"] == 1 and body["counts"]["idle"] == 1
    assert (body["target"], body["maxTotal"]) == (3, 50)
    assert body["loop"]["lastTickAt"] is None
    assert len(body["instances"]) == 2
    assert [a["id"] for a in agents.json()] == [claimed]
    assert agents.json()[0]["agentName"] == "Ada"
    for text in (status.text, agents.text):
        assert "gateway" not in text.lower()
        assert all(agent.token not in text for agent in fleet.agents.values())


async def test_kill_destroys_through_services_then_deletes_the_row(
    client: httpx.AsyncClient,
    fleet: FakeFleet,
    fake_services: FakeServices,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    [other] = await add_fleet_instances(sessionmaker, fleet, 1, status="starting")
    await add_fleet_instances(sessionmaker, fleet, 1)
    body = {**BODY, "joinUrl": "https://convos.example/join/k"}
    claimed = (await client.post("/api/pool/claim", json=body, headers=AUTH)).json()["instanceId"]

    response = await client.delete(f"/api/pool/instances/{claimed}", headers=AUTH)

    assert response.status_code == 200
    assert response.json() == {"instanceId": claimed, "removed": True}
    assert fake_services.destroyed == [claimed]
    assert await statuses(sessionmaker) == {other: "starting"}
    async with sessionmaker() as session:
        claims = (await session.scalars(select(Claim))).all()
    # The claim's outcome stands; its joinUrl is free again.
    assert [(c.status, c.join_released_at is not None) for c in claims] == [("succeeded", True)]


async def test_kill_of_an_unknown_instance_is_404_and_bad_ids_are_422(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/pool/instances/abcdefghijkl", headers=AUTH)
    assert response.status_code == 404
    assert response.json() == error_body("NotFound", "no instance abcdefghijkl")
    assert (await client.delete("/api/pool/instances/NOT-AN-ID", headers=AUTH)).status_code == 422


async def test_a_failed_teardown_leaves_the_row_dead_for_the_tick(
    client: httpx.AsyncClient,
    fleet: FakeFleet,
    fake_services: FakeServices,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
    fake_services.fail = True

    response = await client.delete(f"/api/pool/instances/{instance_id}", headers=AUTH)

    assert response.status_code == 502
    assert response.json() == error_body("PermanentError", "platform refused")
    assert await statuses(sessionmaker) == {instance_id: "dead"}


async def test_dismiss_removes_only_crashed_instances(
    client: httpx.AsyncClient,
    fleet: FakeFleet,
    fake_services: FakeServices,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    [crashed] = await add_fleet_instances(sessionmaker, fleet, 1, status="crashed")
    [claimed] = await add_fleet_instances(sessionmaker, fleet, 1, status="claimed")

    refused = await client.delete(f"/api/pool/crashed/{claimed}", headers=AUTH)
    dismissed = await client.delete(f"/api/pool/crashed/{crashed}", headers=AUTH)

    assert refused.status_code == 409
    assert refused.json() == error_body("Conflict", f"instance {claimed} is claimed, not crashed")
    assert dismissed.status_code == 200
    assert fake_services.destroyed == [crashed]
    assert await statuses(sessionmaker) == {claimed: "claimed"}


async def test_drain_takes_idle_first_then_starting_and_never_claimed(
    client: httpx.AsyncClient,
    fleet: FakeFleet,
    fake_services: FakeServices,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    starting = await add_fleet_instances(sessionmaker, fleet, 2, status="starting")
    idle = await add_fleet_instances(sessionmaker, fleet, 2)
    claimed = await add_fleet_instances(sessionmaker, fleet, 2, status="claimed")

    first = await client.post("/api/pool/drain", json={"count": 3}, headers=AUTH)
    second = await client.post("/api/pool/drain", json={"count": 10}, headers=AUTH)

    assert first.status_code == second.status_code == 200
    drained_first, drained_second = set(first.json()["drained"]), set(second.json()["drained"])
    assert len(drained_first) == 3 and set(idle) <= drained_first
    assert drained_first | drained_second == {*idle, *starting}
    assert len(drained_second) == 1 and second.json()["failed"] == []
    assert sorted(fake_services.destroyed) == sorted([*idle, *starting])
    assert await statuses(sessionmaker) == dict.fromkeys(claimed, "claimed")


async def test_count_bodies_are_validated(client: httpx.AsyncClient) -> None:
    for body in ({}, {"count": 0}, {"count": 101}, {"count": "many"}, {"count": 1, "extra": True}):
        for path in ("/api/pool/drain", "/api/pool/replenish"):
            response = await client.post(path, json=body, headers=AUTH)
            assert response.status_code == 422, (path, body)


async def test_metrics_are_prometheus_text_with_instances_and_claims(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 1)
    await client.post("/api/pool/claim", json=BODY, headers=AUTH)
    await client.post("/api/pool/claim", json=BODY, headers=AUTH)

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    assert 'pool_instances{status="claimed",template="default"} 1.0' in lines
    assert 'pool_instances{status="idle",template="default"} 0.0' in lines
    assert any(line.startswith('pool_target_idle{template="default"} ') for line in lines)
    assert 'pool_claims_total{outcome="claimed"} 1.0' in lines
    assert 'pool_claims_total{outcome="empty"} 1.0' in lines
    assert "pool_claim_latency_seconds_count 2.0" in lines
    assert any(line.startswith("pool_tick_duration_seconds_count") for line in lines)


async def test_healthz_and_version(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"ok": True, "app": "pool", "database": "ok"}
    assert (await client.get("/version")).json()["app"] == "pool"


async def test_metrics_count_the_claim_writes_that_went_in_batches(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A burst of claims: beyond the few that run alone, their writes go as batches, and the
    metrics say how many batches and how many claims (pool.claims.coalesce)."""
    await add_fleet_instances(sessionmaker, fleet, 20)
    answers = await asyncio.gather(
        *(client.post("/api/pool/claim", json=BODY, headers=AUTH) for _ in range(20))
    )
    assert [a.status_code for a in answers] == [200] * 20

    lines = (await client.get("/metrics")).text.splitlines()
    batched = {
        line.split()[0]: float(line.split()[1]) for line in lines if line.startswith("pool_claim_write")
    }
    assert batched['pool_claim_write_batches_total{write="reserve"}'] >= 1
    # At most every claim but the ones that ran first, alone, went in a reserve batch.
    assert 2 <= batched['pool_claim_writes_batched_total{write="reserve"}'] <= 20 - ALONE_IN_FLIGHT
    assert batched['pool_claim_writes_batched_total{write="claimed"}'] >= 2
