"""Sync (DESIGN.md §11): a template's current instructions pushed to the agents claimed from it,
through each running instance (reference runtimes over real HTTP), recorded per agent; agents that
cannot take them are reported, not a failure of the whole call."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.main import create_app
from pool.models import Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH, running
from tests.pool.templates.agents_support import add_agent, bind, runtime
from tests.support import free_port, serve

TEMPLATE = {"slug": "helper", "name": "Helper", "instructions": "Be kind."}


async def _template(client: httpx.AsyncClient, **fields: Any) -> str:
    response = await client.post("/api/templates", json={**TEMPLATE, **fields}, headers=AUTH)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def _new_instructions(client: httpx.AsyncClient, template_id: str, text: str) -> None:
    response = await client.patch(f"/api/templates/{template_id}", json={"instructions": text}, headers=AUTH)
    assert response.status_code == 200, response.text


async def _rows(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Instance]:
    async with sessionmaker() as session:
        return {row.id: row for row in await session.scalars(select(Instance))}


async def test_a_template_sync_reaches_each_claimed_agent_and_reports_the_rest(
    client: httpx.AsyncClient,
    fleet: FakeFleet,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    template_id = await _template(client)
    async with runtime(tmp_path) as claimed, runtime(tmp_path, runtime_join_pending=True) as pending:
        conversation = await bind(claimed.url, claimed.token)
        await bind(pending.url, pending.token, join_url="https://convos.example/j/1")
        synced_ids = [
            await add_agent(sessionmaker, url=claimed.url, token=claimed.token, template_id=template_id),
            await add_agent(
                sessionmaker,
                url=pending.url,
                token=pending.token,
                template_id=template_id,
                status="pending_acceptance",
            ),
        ]
        # A runtime without the capability (the fake fleet announces none), and one that is down.
        old = fleet.add("oldruntime01")
        await bind(fleet.url("oldruntime01"), old.token)
        old_id = await add_agent(
            sessionmaker, url=fleet.url("oldruntime01"), token=old.token, template_id=template_id
        )
        down_id = await add_agent(
            sessionmaker, url=f"http://127.0.0.1:{free_port()}", token="t", template_id=template_id
        )
        # Not reached: an idle instance of the template, and an agent of another template.
        untouched = [
            await add_agent(
                sessionmaker, url=claimed.url, token=claimed.token, template_id=template_id, status="idle"
            ),
            await add_agent(sessionmaker, url=claimed.url, token=claimed.token, template_id="default"),
        ]
        await _new_instructions(client, template_id, "Be brief.")

        response = await client.post(f"/api/templates/{template_id}/sync", headers=AUTH)

        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["templateId"], body["version"]) == (template_id, 2)
        assert (body["synced"], body["skipped"], body["failed"]) == (2, 1, 1)
        outcomes = {o["instanceId"]: o for o in body["instances"]}
        assert set(outcomes) == {*synced_ids, old_id, down_id}
        assert all(outcomes[i]["outcome"] == "synced" for i in synced_ids)
        assert outcomes[old_id]["outcome"] == "skipped"
        assert "lacks the 'instructions' capability" in outcomes[old_id]["reason"]
        assert outcomes[down_id]["outcome"] == "failed"
        assert "unreachable" in outcomes[down_id]["reason"]
        # The runtimes themselves run on the new instructions, in the same conversation.
        assert claimed.binding()["instructions"] == pending.binding()["instructions"] == "Be brief."
        assert claimed.binding()["conversation_id"] == conversation
    assert fleet.agents["oldruntime01"].provisions == 1
    rows = await _rows(sessionmaker)
    for instance_id in synced_ids:
        assert rows[instance_id].instructions == "Be brief."
        assert rows[instance_id].template_synced_at is not None
        assert outcomes[instance_id]["templateSyncedAt"] is not None
    for instance_id in (old_id, down_id, *untouched):
        assert (rows[instance_id].instructions, rows[instance_id].template_synced_at) == (None, None)


async def test_one_agent_sync_answers_its_outcome_or_a_clear_error(
    client: httpx.AsyncClient,
    fleet: FakeFleet,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    template_id = await _template(client, instructions="Be exact.")
    async with runtime(tmp_path) as agent:
        await bind(agent.url, agent.token)
        agent_id = await add_agent(sessionmaker, url=agent.url, token=agent.token, template_id=template_id)
        synced = await client.post(f"/api/pool/instances/{agent_id}/sync", headers=AUTH)
        idle_id = await add_agent(
            sessionmaker, url=agent.url, token=agent.token, template_id=template_id, status="idle"
        )
        idle = await client.post(f"/api/pool/instances/{idle_id}/sync", headers=AUTH)
        assert agent.binding()["instructions"] == "Be exact."
    old = fleet.add("oldruntime02")
    await bind(fleet.url("oldruntime02"), old.token)
    old_id = await add_agent(
        sessionmaker, url=fleet.url("oldruntime02"), token=old.token, template_id=template_id
    )
    down_id = await add_agent(
        sessionmaker, url=f"http://127.0.0.1:{free_port()}", token="t", template_id=template_id
    )

    lacking = await client.post(f"/api/pool/instances/{old_id}/sync", headers=AUTH)
    down = await client.post(f"/api/pool/instances/{down_id}/sync", headers=AUTH)
    unknown = await client.post("/api/pool/instances/abcdefghijkl/sync", headers=AUTH)
    malformed = await client.post("/api/pool/instances/NOT-AN-ID/sync", headers=AUTH)

    assert synced.status_code == 200, synced.text
    assert synced.json()["outcome"] == "synced" and synced.json()["instanceId"] == agent_id
    assert (idle.status_code, idle.json()["kind"]) == (409, "Conflict")
    assert "only a claimed agent" in idle.json()["detail"]
    assert (lacking.status_code, lacking.json()["kind"]) == (409, "Conflict")
    assert "lacks the 'instructions' capability" in lacking.json()["detail"]
    assert (down.status_code, down.json()["kind"]) == (502, "UpstreamError")
    assert (unknown.status_code, malformed.status_code) == (404, 422)
    rows = await _rows(sessionmaker)
    assert rows[agent_id].template_synced_at is not None
    assert rows[old_id].template_synced_at is None and rows[down_id].template_synced_at is None


async def test_a_template_without_instructions_or_unknown_is_refused(client: httpx.AsyncClient) -> None:
    # The default template's version 1 is the deployment's settings: it has no instructions of its own.
    nothing = await client.post("/api/templates/default/sync", headers=AUTH)
    unknown = await client.post("/api/templates/tpl_abcdefghijkl/sync", headers=AUTH)
    malformed = await client.post("/api/templates/nope/sync", headers=AUTH)
    assert (nothing.status_code, nothing.json()["kind"]) == (409, "Conflict")
    assert "no instructions to push" in nothing.json()["detail"]
    assert (unknown.status_code, malformed.status_code) == (404, 422)


def _slow_agents(delay: float, state: dict[str, int], release: asyncio.Event) -> FastAPI:
    """Instances that take `delay` (or until `release`) to answer each call and count how many
    calls run at once."""
    app = FastAPI()

    async def slowly() -> None:
        state["now"] += 1
        state["most"] = max(state["most"], state["now"])
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), delay)
        finally:
            state["now"] -= 1

    @app.get("/i/{instance_id}/pool/health")
    async def health(instance_id: str) -> dict[str, Any]:
        await slowly()
        return {"ready": True, "version": "x", "capabilities": ["instructions"]}

    @app.post("/i/{instance_id}/convos/instructions")
    async def instructions(instance_id: str, request: Request) -> dict[str, Any]:
        await slowly()
        return {"ok": True, "conversationId": f"conv_{instance_id}", "agentName": "Ada"}

    return app


async def test_a_sync_calls_agents_a_bounded_number_at_a_time_and_gives_up_on_a_hung_one(
    client: httpx.AsyncClient, make_settings: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    template_id = await _template(client)
    state = {"now": 0, "most": 0}
    hung = {"now": 0, "most": 0}
    release = asyncio.Event()
    async with (
        serve(_slow_agents(0.2, state, asyncio.Event())) as slow_url,
        serve(_slow_agents(30, hung, release)) as hung_url,
    ):
        for n in range(6):
            await add_agent(sessionmaker, url=f"{slow_url}/i/a{n}", token="t", template_id=template_id)
        hung_id = await add_agent(sessionmaker, url=f"{hung_url}/i/h", token="t", template_id=template_id)
        settings = make_settings(sync_concurrency=2, sync_timeout_seconds=1.0)
        async with running(create_app(settings)) as pool:
            started = time.monotonic()
            response = await pool.post(f"/api/templates/{template_id}/sync", headers=AUTH)
            took = time.monotonic() - started
        release.set()  # the hung instance's server may now stop
    body = response.json()
    assert (body["synced"], body["failed"]) == (6, 1), body
    assert state["most"] == 2
    [failed] = [o for o in body["instances"] if o["outcome"] == "failed"]
    assert failed["instanceId"] == hung_id and "unreachable" in failed["reason"]
    # 7 agents, 2 at a time, 2 calls each: the hung one costs its one timeout, not the whole call's.
    assert took < 5.0
