"""Upgrade and sync of a claimed agent on the local provider: the pool app (its own loop running)
and services over real HTTP, real runtime processes. The upgrade goes through services' redeploy
(the process restarts), and the agent comes back serving the same conversation."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.main import create_app
from pool.models import Instance
from shared.db import make_engine, make_sessionmaker
from tests.fakes.fleet import FakeFleet
from tests.pool.e2e.test_claim_end_to_end import AUTH, KEY, SERVICES_AUTH
from tests.pool.factories import add_fleet_instances
from tests.pool.tick.conftest import Services, pool_settings
from tests.support import free_port, serve, until

pytestmark = pytest.mark.slow


async def _claimed_from(pool_db_url: str, instance_id: str, template_id: str) -> None:
    # Claims by template land with "Pools per template"; until then the row says where it came from.
    engine = make_engine(pool_db_url, pool_size=1)
    try:
        async with make_sessionmaker(engine).begin() as session:
            await session.execute(
                update(Instance)
                .where(Instance.id == instance_id)
                .values(template_id=template_id, template_version=1)
            )
    finally:
        await engine.dispose()


async def test_upgrade_rolls_a_claimed_agent_to_the_current_version_and_sync_reaches_it(
    services: Services, pool_db_url: str
) -> None:
    settings = pool_settings(
        pool_db_url, services.url, min_idle=2, max_total=2, api_key=KEY, tick_enabled=True
    )
    async with (
        serve(create_app(settings)) as pool_url,
        httpx.AsyncClient(base_url=pool_url, timeout=60) as pool,
    ):
        created = await pool.post(
            "/api/templates",
            headers=AUTH,
            json={"slug": "img", "name": "Img", "image": "ghcr.io/acme/runtime:1", "instructions": "v1"},
        )
        template_id = created.json()["id"]
        await until(lambda: _idle(pool, 2))
        claimed = await pool.post(
            "/api/pool/claim", headers=AUTH, json={"agentName": "Ada", "instructions": "hi"}
        )
        assert claimed.status_code == 200, claimed.text
        agent_id, conversation = claimed.json()["instanceId"], claimed.json()["conversationId"]
        await _claimed_from(pool_db_url, agent_id, template_id)

        same = await pool.post(f"/api/pool/instances/{agent_id}/upgrade", headers=AUTH)
        pid = services.pid_of(agent_id)
        changed = await pool.patch(
            f"/api/templates/{template_id}", headers=AUTH, json={"image": "ghcr.io/acme/runtime:2"}
        )
        assert changed.json()["currentVersion"] == 2
        upgraded = await pool.post(f"/api/pool/instances/{agent_id}/upgrade", headers=AUTH)
        again = await pool.post(f"/api/pool/instances/{agent_id}/upgrade", headers=AUTH)
        idle_id = next(
            a["id"]
            for a in (await pool.get("/api/pool/instances", headers=AUTH)).json()
            if a["status"] == "idle"
        )
        idle = await pool.post(f"/api/pool/instances/{idle_id}/upgrade", headers=AUTH)
        unknown = await pool.post("/api/pool/instances/000000000000/upgrade", headers=AUTH)

        assert (same.status_code, same.json()["kind"]) == (409, "Conflict")
        assert "already on version 1" in same.json()["detail"]
        assert upgraded.status_code == 200, upgraded.text
        assert upgraded.json() == {
            "instanceId": agent_id,
            "templateId": template_id,
            "fromVersion": 1,
            "toVersion": 2,
            "image": "ghcr.io/acme/runtime:2",
            "deployStatus": "deploying",
        }
        assert (again.status_code, idle.status_code, unknown.status_code) == (409, 409, 404)
        async with httpx.AsyncClient(base_url=services.url, headers=SERVICES_AUTH) as svc:
            infra = (await svc.get(f"/instances/{agent_id}")).json()
        assert infra["runtimeImage"] == "ghcr.io/acme/runtime:2"
        assert services.pid_of(agent_id) != pid  # a new process: the redeploy happened
        agents = {a["id"]: a for a in (await pool.get("/api/pool/agents", headers=AUTH)).json()}
        assert agents[agent_id]["templateVersion"] == 2

        # The restarted process serves the same conversation, as the runtime itself says.
        url = next(
            i for i in (await pool.get("/api/pool/instances", headers=AUTH)).json() if i["id"] == agent_id
        )["url"]
        token = json.loads((services.data_dir / agent_id / "env.json").read_text())["GATEWAY_TOKEN"]

        async def serving() -> bool:
            try:
                async with httpx.AsyncClient(timeout=2) as http:
                    answer = await http.get(
                        f"{url}/convos/status", headers={"Authorization": f"Bearer {token}"}
                    )
            except httpx.HTTPError:
                return False
            return answer.status_code == 200 and answer.json()["conversationId"] == conversation

        await until(serving, timeout=30)

        # Sync reaches the real process: its data directory holds the new instructions.
        await pool.patch(f"/api/templates/{template_id}", headers=AUTH, json={"instructions": "v3"})
        synced = await pool.post(f"/api/templates/{template_id}/sync", headers=AUTH)
        assert (synced.json()["synced"], synced.json()["failed"]) == (1, 0), synced.text
        binding = json.loads((services.data_dir / agent_id / "data" / "binding.json").read_text())
        assert (binding["instructions"], binding["conversation_id"]) == ("v3", conversation)


async def _idle(pool: httpx.AsyncClient, n: int) -> bool:
    counts: dict[str, Any] = (await pool.get("/api/pool/counts", headers=AUTH)).json()
    return int(counts["idle"]) >= n


async def test_upgrade_with_services_down_is_502_and_records_nothing(
    pool_db_url: str, sessionmaker: async_sessionmaker[AsyncSession], fleet: FakeFleet
) -> None:
    [agent_id] = await add_fleet_instances(sessionmaker, fleet, 1, status="claimed")
    settings = pool_settings(pool_db_url, f"http://127.0.0.1:{free_port()}", api_key=KEY, tick_enabled=False)
    async with (
        serve(create_app(settings)) as pool_url,
        httpx.AsyncClient(base_url=pool_url, timeout=60) as pool,
    ):
        created = await pool.post(
            "/api/templates", headers=AUTH, json={"slug": "s", "name": "S", "image": "a:1"}
        )
        template_id = created.json()["id"]
        await _claimed_from(pool_db_url, agent_id, template_id)
        await pool.patch(f"/api/templates/{template_id}", headers=AUTH, json={"image": "a:2"})
        down = await pool.post(f"/api/pool/instances/{agent_id}/upgrade", headers=AUTH)
        agents = {a["id"]: a for a in (await pool.get("/api/pool/agents", headers=AUTH)).json()}
    assert down.status_code == 502
    assert down.json()["kind"] in ("UpstreamError", "TransientError")
    assert "services unreachable" in down.json()["detail"]
    assert agents[agent_id]["templateVersion"] == 1
