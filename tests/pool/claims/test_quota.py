"""The per-owner quota (DESIGN.md §11), over real HTTP and PostgreSQL: past an owner's limit of live
agents a claim answers 429 with the reason and nothing is provisioned, atomically under concurrent
claims on two replicas; queued claims count, a template's own limit counts its agents, a retry of
an existing claim is answered as before, and claims without an owner are not counted."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.models import Claim, Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.claims.queue_support import BODY, pool_http
from tests.pool.factories import add_fleet_instances

LIMIT = 3


async def _rows(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[list[Instance], list[Claim]]:
    async with sessionmaker() as session:
        return list(await session.scalars(select(Instance))), list(await session.scalars(select(Claim)))


def _refused(response: httpx.Response) -> bool:
    return response.status_code == 429 and response.json()["kind"] == "QuotaExceeded"


async def test_limit_plus_five_concurrent_claims_of_one_owner_get_exactly_the_limit(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Slow provisions keep the winners in flight while the others count them.
    await add_fleet_instances(sessionmaker, fleet, LIMIT + 5 + 2, provision_delay=0.3)
    settings = make_settings(owner_max_agents=LIMIT)
    async with pool_http(settings) as one, pool_http(settings) as two:
        body = {**BODY, "ownerId": "user:42"}
        responses = await asyncio.gather(
            *((one, two)[n % 2].post("/api/pool/claim", json=body) for n in range(LIMIT + 5))
        )
        codes = Counter(r.status_code for r in responses)
        assert codes == {200: LIMIT, 429: 5}, [r.text for r in responses]
        refusal = next(r.json() for r in responses if r.status_code == 429)
        assert refusal["kind"] == "QuotaExceeded"
        assert refusal["error"].startswith(f"Owner user:42 already has {LIMIT} live agents")
        assert f"({LIMIT})" in refusal["detail"]
        # Another owner, and a claim with no owner, are not held back by user:42's agents.
        other = await one.post("/api/pool/claim", json={**BODY, "ownerId": "user:43"})
        anonymous = await two.post("/api/pool/claim", json=BODY)
        assert (other.status_code, anonymous.status_code) == (200, 200)
        listed = await one.get("/api/pool/agents", params={"ownerId": "user:42"})
    instances, claims = await _rows(sessionmaker)
    statuses = Counter(row.status for row in instances)
    assert statuses == {"claimed": LIMIT + 2, "idle": 5}, statuses
    assert sum(agent.provisions for agent in fleet.agents.values()) == LIMIT + 2
    assert Counter(c.status for c in claims if c.owner_id == "user:42") == {"succeeded": LIMIT}
    assert len(listed.json()) == LIMIT


async def test_queued_claims_count_and_a_cancelled_one_frees_its_place(
    make_settings: Callable[..., Settings],
) -> None:
    async with pool_http(make_settings(owner_max_agents=2)) as http:
        body = {**BODY, "ownerId": "user:7", "timeoutSeconds": 60}
        first = await http.post("/api/pool/claims", json=body)
        second = await http.post("/api/pool/claims", json=body)
        third = await http.post("/api/pool/claims", json=body)
        waited = await http.post("/api/pool/claim?wait=1", json={**BODY, "ownerId": "user:7"})
        anonymous = await http.post("/api/pool/claims", json={**BODY, "timeoutSeconds": 60})
        assert [first.status_code, second.status_code, anonymous.status_code] == [202, 202, 202]
        assert _refused(third) and _refused(waited), (third.text, waited.text)
        cancelled = await http.delete(f"/api/pool/claims/{first.json()['id']}")
        assert cancelled.status_code == 200, cancelled.text
        again = await http.post("/api/pool/claims", json=body)
        assert again.status_code == 202, again.text


async def test_a_templates_own_limit_counts_its_agents(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings(owner_max_agents=None)) as http:
        created = await http.post(
            "/api/templates", json={"slug": "solo", "name": "Solo", "owner": "acme", "ownerAgentLimit": 1}
        )
        template_id = created.json()["id"]
        await add_fleet_instances(sessionmaker, fleet, 2, row={"template_id": template_id})
        await add_fleet_instances(sessionmaker, fleet, 2)
        claim: dict[str, Any] = {**BODY, "ownerId": "acme", "templateId": template_id}
        first = await http.post("/api/pool/claim", json=claim)
        second = await http.post("/api/pool/claim", json=claim)
        default = await http.post("/api/pool/claim", json={**BODY, "ownerId": "acme"})
    assert first.status_code == 200, first.text
    assert _refused(second)
    assert f"of template {template_id}" in second.json()["detail"] and "(1)" in second.json()["detail"]
    assert default.status_code == 200, default.text
    instances, _ = await _rows(sessionmaker)
    assert Counter(i.status for i in instances if i.template_id == template_id) == {"claimed": 1, "idle": 1}


async def test_a_retry_of_an_owners_claim_is_answered_at_the_limit_and_an_ended_agent_frees_a_place(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 3)
    async with pool_http(make_settings(owner_max_agents=1)) as http:
        body = {**BODY, "ownerId": "user:9"}
        first = await http.post("/api/pool/claim", json=body, headers={"Idempotency-Key": "k1"})
        retry = await http.post("/api/pool/claim", json=body, headers={"Idempotency-Key": "k1"})
        new = await http.post("/api/pool/claim", json=body, headers={"Idempotency-Key": "k2"})
        assert first.status_code == retry.status_code == 200, retry.text
        assert retry.json()["instanceId"] == first.json()["instanceId"]
        assert _refused(new)
        killed = await http.delete(f"/api/pool/instances/{first.json()['instanceId']}")
        assert killed.status_code in (200, 502), killed.text  # the pool marks it dead either way
        after = await http.post("/api/pool/claim", json=body, headers={"Idempotency-Key": "k3"})
    assert after.status_code == 200, after.text


async def test_owner_ids_and_limits_are_checked(make_settings: Callable[..., Settings]) -> None:
    async with pool_http(make_settings()) as http:
        bad_owner = await http.post("/api/pool/claim", json={**BODY, "ownerId": "not ok"})
        bad_limit = await http.post("/api/templates", json={"slug": "z", "name": "Z", "ownerAgentLimit": 0})
    assert bad_owner.status_code == 422 and bad_limit.status_code == 422
