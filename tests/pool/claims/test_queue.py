"""The claim queue over real HTTP (DESIGN.md §10): a claim that finds no idle instance waits in
line, in order, and is followed, cancelled or timed out as a resource."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from shared.errors import error_body
from tests.fakes.fleet import FakeFleet
from tests.pool.claims.queue_support import BODY, claim_rows, enqueue, pool_http, queue_held, until
from tests.pool.factories import add_fleet_instances

ID_LENGTH = 32


async def test_a_claim_with_no_idle_instance_is_queued_then_served_when_one_becomes_idle(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        ticket = await enqueue(http)
        assert len(ticket.pop("id")) == ID_LENGTH
        # Nothing measured yet: no honest ETA.
        assert ticket == {"status": "queued", "position": 1, "etaSeconds": None, "claim": None, "error": None}

        [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
        claim_id = (await claim_rows(sessionmaker)).popitem()[0]
        served = await until(http, claim_id, "succeeded")

    agent = fleet.agents[instance_id]
    assert served == {
        "id": claim_id,
        "status": "succeeded",
        "position": None,
        "etaSeconds": None,
        "claim": {
            "inviteUrl": agent.invite_url,
            "conversationId": agent.conversation_id,
            "instanceId": instance_id,
            "joined": False,
            "status": "created",
            "agentName": "Ada",
        },
        "error": None,
    }
    row = (await claim_rows(sessionmaker))[claim_id]
    assert row.queued_at is not None and row.assigned_at is not None and row.assigned_at >= row.queued_at


async def test_an_idle_instance_with_nobody_queued_is_claimed_before_the_answer(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
    async with pool_http(make_settings()) as http:
        ticket = await enqueue(http)
    assert (ticket["status"], ticket["claim"]["instanceId"], ticket["position"]) == (
        "succeeded",
        instance_id,
        None,
    )
    assert fleet.agents[instance_id].provisions == 1


async def test_a_cancelled_claim_never_gets_an_instance(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        first = await enqueue(http, joinUrl="https://convos.example/join/first")
        second = await enqueue(http)
        assert second["position"] == 2

        cancelled = await http.delete(f"/api/pool/claims/{first['id']}")
        again = await http.delete(f"/api/pool/claims/{first['id']}")
        [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
        served = await until(http, second["id"], "succeeded")
        refused = await http.delete(f"/api/pool/claims/{second['id']}")
        # The cancel let the joinUrl go: it may be claimed again.
        retry = await enqueue(http, joinUrl="https://convos.example/join/first")

    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {
        "id": first["id"],
        "status": "cancelled",
        "position": None,
        "etaSeconds": None,
        "claim": None,
        "error": error_body("Cancelled", "the claim was cancelled while queued"),
    }
    assert again.json() == cancelled.json()
    assert served["claim"]["instanceId"] == instance_id
    assert refused.status_code == 409
    assert refused.json()["detail"] == "the claim is succeeded: only a queued claim can be cancelled"
    assert retry["id"] != first["id"] and retry["status"] == "queued"
    rows = await claim_rows(sessionmaker)
    assert (rows[first["id"]].status, rows[first["id"]].instance_id) == ("cancelled", None)
    assert fleet.agents[instance_id].provisions == 1


async def test_a_queued_claim_past_its_timeout_fails_with_the_reason_and_frees_its_key(
    make_settings: Callable[..., Settings], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    key = {"Idempotency-Key": "queue-timeout-1"}
    async with pool_http(make_settings()) as http:
        first = (await http.post("/api/pool/claims", json={**BODY, "timeoutSeconds": 1}, headers=key)).json()
        same = (await http.post("/api/pool/claims", json={**BODY, "timeoutSeconds": 1}, headers=key)).json()
        await asyncio.sleep(1.2)
        failed = await until(http, first["id"], "failed", within=5)
        retried = (
            await http.post("/api/pool/claims", json={**BODY, "timeoutSeconds": 1}, headers=key)
        ).json()
        too_long = await http.post("/api/pool/claims", json={**BODY, "timeoutSeconds": 3601})

    assert same["id"] == first["id"]  # a retry of the key while queued is the same claim
    assert failed["error"] == error_body(
        "Unavailable", "no instance became free within 1 s in the queue; retry later"
    )
    assert retried["id"] != first["id"] and retried["status"] == "queued"
    assert too_long.status_code == 400
    assert (await claim_rows(sessionmaker))[first["id"]].instance_id is None


async def test_claim_with_wait_is_served_through_the_queue_or_answers_503_with_the_reason(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        waiting = asyncio.create_task(http.post("/api/pool/claim?wait=10", json=BODY))
        await asyncio.sleep(0.5)
        [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
        served = await waiting
        timed_out = await http.post("/api/pool/claim?wait=1", json=BODY)
        empty = await http.post("/api/pool/claim", json=BODY)

    assert served.status_code == 200, served.text
    assert served.json()["instanceId"] == instance_id
    assert timed_out.status_code == 503
    assert timed_out.headers["Retry-After"] == "5"
    assert timed_out.json()["detail"] == "no instance became free within 1 s in the queue; retry later"
    assert empty.status_code == 503
    rows = await claim_rows(sessionmaker)
    # wait=0 with an empty pool queues nothing; the timed-out claim recorded why it failed.
    assert sorted(row.status for row in rows.values()) == ["failed", "succeeded"]
    [failed] = [row for row in rows.values() if row.status == "failed"]
    assert failed.response == error_body(
        "Unavailable", "no instance became free within 1 s in the queue; retry later"
    )


async def test_an_arrival_while_others_are_queued_queues_even_if_an_instance_just_became_idle(
    make_settings: Callable[..., Settings],
    fleet: FakeFleet,
    sessionmaker: async_sessionmaker[AsyncSession],
    pool_db_url: str,
) -> None:
    async with pool_http(make_settings()) as http:
        async with queue_held(pool_db_url):
            head = await enqueue(http)
            [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
            # The instance is idle and nobody has dispatched it yet: newcomers still do not take it.
            barging = await http.post("/api/pool/claim", json=BODY)
            newcomer = await enqueue(http)
        served = await until(http, head["id"], "succeeded")
        behind = (await http.get(f"/api/pool/claims/{newcomer['id']}")).json()

    assert barging.status_code == 503
    assert (newcomer["status"], newcomer["position"]) == ("queued", 2)
    assert served["claim"]["instanceId"] == instance_id
    assert (behind["status"], behind["position"]) == ("queued", 1)


async def test_the_event_stream_shows_the_position_then_the_answer(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    events: list[tuple[str, dict[str, object]]] = []

    async def follow(http: httpx.AsyncClient, claim_id: str) -> None:
        async with http.stream("GET", f"/api/pool/claims/{claim_id}/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in stream.aiter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    events.append((name, json.loads(line.removeprefix("data: "))))

    async with pool_http(make_settings()) as http:
        await enqueue(http)
        mine = await enqueue(http)
        following = asyncio.create_task(follow(http, mine["id"]))
        await asyncio.sleep(0.5)
        await add_fleet_instances(sessionmaker, fleet, 1)
        await asyncio.sleep(1.5)
        [second] = await add_fleet_instances(sessionmaker, fleet, 1)
        await asyncio.wait_for(following, 10)
        missing = await http.get(f"/api/pool/claims/{'0' * 32}/events")

    names = [name for name, _ in events]
    assert names[0] == "position" and events[0][1]["position"] == 2
    assert ("position", 1) in [(name, data["position"]) for name, data in events]
    assert names[-1] == "succeeded"
    final = events[-1][1]
    assert isinstance(final["claim"], dict) and final["claim"]["instanceId"] == second
    assert missing.status_code == 404


async def test_a_pool_restart_keeps_the_queue_and_its_order(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        queued = [(await enqueue(http, agentName=f"agent {n}"))["id"] for n in range(3)]
    instance_ids = await add_fleet_instances(sessionmaker, fleet, 3)
    async with pool_http(make_settings()) as http:
        served = [await until(http, claim_id, "succeeded") for claim_id in queued]

    assert sorted(ticket["claim"]["instanceId"] for ticket in served) == sorted(instance_ids)
    rows = await claim_rows(sessionmaker)
    assigned_at = [rows[claim_id].assigned_at for claim_id in queued]
    assert assigned_at == sorted(assigned_at)  # in arrival order (one round shares its moment)
