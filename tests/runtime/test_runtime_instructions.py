"""The reference runtime's `instructions` capability (DESIGN.md §4, §11 Sync): announced in
`/pool/health`, it replaces a bound agent's instructions in place, kept on disk like the binding."""

from __future__ import annotations

import json
from pathlib import Path

from tests.runtime.test_runtime_app import AUTH, BODY, make_client, make_settings


async def test_health_announces_the_instructions_capability(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path)) as client:
        health = (await client.get("/pool/health")).json()
    assert "instructions" in health["capabilities"]


async def test_instructions_replace_the_bound_agents_in_place_and_survive_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    async with make_client(settings) as client:
        bound = (await client.post("/pool/provision", json=BODY, headers=AUTH)).json()
        response = await client.post("/convos/instructions", json={"instructions": "Be brief."}, headers=AUTH)
        assert response.status_code == 200, response.text
        assert response.json() == {"ok": True, "conversationId": bound["conversationId"], "agentName": "Ada"}
        status = (await client.get("/convos/status", headers=AUTH)).json()
    # The conversation is the same one: a sync changes what the agent is told, nothing else.
    assert status["conversationId"] == bound["conversationId"]
    stored = json.loads((tmp_path / "binding.json").read_text())
    assert (stored["instructions"], stored["agent_name"]) == ("Be brief.", "Ada")
    # A new process over the same data directory reads the new instructions.
    async with make_client(settings) as client:
        renamed = await client.post(
            "/convos/instructions", json={"instructions": "Be brief.", "agentName": "Bea"}, headers=AUTH
        )
    assert renamed.json()["agentName"] == "Bea"
    assert json.loads((tmp_path / "binding.json").read_text())["instructions"] == "Be brief."


async def test_instructions_on_a_clean_instance_are_409(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path)) as client:
        response = await client.post("/convos/instructions", json={"instructions": "x"}, headers=AUTH)
    assert response.status_code == 409
    assert response.json()["error"] == "Conflict"
    assert not (tmp_path / "binding.json").exists()


async def test_instructions_need_the_instances_own_token_and_a_valid_body(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path)) as client:
        await client.post("/pool/provision", json=BODY, headers=AUTH)
        unauthorised = await client.post("/convos/instructions", json={"instructions": "x"})
        wrong = await client.post(
            "/convos/instructions", json={"instructions": "x"}, headers={"Authorization": "Bearer nope"}
        )
        too_long = await client.post(
            "/convos/instructions", json={"instructions": "x" * 50_001}, headers=AUTH
        )
        missing = await client.post("/convos/instructions", json={}, headers=AUTH)
        empty_name = await client.post(
            "/convos/instructions", json={"instructions": "x", "agentName": ""}, headers=AUTH
        )
    assert (unauthorised.status_code, wrong.status_code) == (401, 401)
    assert [r.status_code for r in (too_long, missing, empty_name)] == [400, 400, 400]
    assert "x" * 100 not in too_long.text
