"""The instance event log through real HTTP and a real PostgreSQL: a claim (written off its answer
path, within the recorder's flush), a failed provision, a kill and a drain each leave their entry,
with its actor and reason; `poolctl events` prints them newest first; and the claims' outcomes reach
the minute samples the dashboard draws (warm hits, misses, latency)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from pool.models import ClaimSample, Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH, FakeServices
from tests.pool.factories import add_fleet_instances
from tests.pool.test_cli import poolctl
from tests.support import serve

CLAIM = {"agentName": "Ada", "instructions": "hi"}


@pytest.fixture
async def pool_url(make_settings: Callable[..., Settings], fake_services: FakeServices) -> AsyncIterator[str]:
    async with serve(create_app(make_settings(services_url=fake_services.url))) as url:
        yield url


async def events_of(http: httpx.AsyncClient, instance_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/api/pool/instances/{instance_id}/events", headers=AUTH)
    assert response.status_code == 200, response.text
    return list(response.json())


async def until_logged(
    http: httpx.AsyncClient, instance_id: str, kind: str, timeout: float = 10.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in await events_of(http, instance_id) if e["kind"] == kind]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {kind} event for {instance_id} within {timeout} s"
        await asyncio.sleep(0.2)


async def test_claims_kills_and_drains_are_logged_with_actor_and_reason(
    pool_url: str, sessionmaker: async_sessionmaker[AsyncSession], fleet: FakeFleet
) -> None:
    first, second, third = await add_fleet_instances(sessionmaker, fleet, 3)
    async with httpx.AsyncClient(base_url=pool_url, timeout=30) as http:
        claimed = await http.post("/api/pool/claim", headers=AUTH, json=CLAIM)
        assert claimed.status_code == 200, claimed.text
        instance_id = claimed.json()["instanceId"]
        assert instance_id == first  # the oldest idle

        entry = await until_logged(http, first, "claim.claimed")
        assert entry["actor"] == "claim"
        assert entry["summary"]["status"] == "claimed" and len(entry["summary"]["claimId"]) == 32

        killed = await http.delete(f"/api/pool/instances/{first}", headers=AUTH)
        assert killed.status_code == 200, killed.text
        log = await events_of(http, first)
        assert [e["kind"] for e in log] == ["instance.killed", "claim.claimed"]  # newest first
        assert log[0]["actor"] == "operator"
        assert log[0]["summary"] == {"from": "claimed", "to": "dead", "reason": "killed by operator"}

        drained = await http.post("/api/pool/drain", headers=AUTH, json={"count": 1})
        assert drained.status_code == 200, drained.text
        gone = drained.json()["drained"]
        assert gone == [second]
        assert [e["kind"] for e in await events_of(http, second)] == ["instance.drained"]
        # The log outlives the instance's row (until retention).
        async with sessionmaker() as session:
            assert await session.get(Instance, first) is None

        printed = await poolctl("events", first, url=pool_url)
        assert printed.code == 0, printed.err
        lines = printed.out.splitlines()
        killed_line = next(i for i, line in enumerate(lines) if "instance.killed" in line)
        claimed_line = next(i for i, line in enumerate(lines) if "claim.claimed" in line)
        assert killed_line < claimed_line and "reason=killed by operator" in printed.out
        nothing = await poolctl("events", third, url=pool_url)
        assert nothing.code == 0 and f"no events recorded for {third}" in nothing.out
        refused = await poolctl("events", "NOT-AN-ID", url=pool_url)
        assert refused.code == 1

    # The claim was a warm hit, with its latency in the minute's histogram.
    async with sessionmaker() as session:
        rows = (await session.scalars(select(ClaimSample))).all()
    assert sum(r.hits for r in rows) == 1 and sum(r.misses for r in rows) == 0
    assert sum(sum(r.latency_buckets) for r in rows) == 1


async def test_a_failed_provision_is_logged_on_the_instance_it_failed_on(
    pool_url: str, sessionmaker: async_sessionmaker[AsyncSession], fleet: FakeFleet
) -> None:
    (broken,) = await add_fleet_instances(sessionmaker, fleet, 1, fail_provision=True)
    (good,) = await add_fleet_instances(sessionmaker, fleet, 1)
    async with httpx.AsyncClient(base_url=pool_url, timeout=30) as http:
        claimed = await http.post("/api/pool/claim", headers=AUTH, json=CLAIM)
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["instanceId"] == good
        failed = await until_logged(http, broken, "claim.failed")
        assert failed["actor"] == "pool"
        assert failed["summary"]["status"] in ("idle", "dead")
        assert failed["summary"]["reason"].startswith("provision failed")
        await until_logged(http, good, "claim.claimed")
