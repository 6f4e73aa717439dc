"""Pools per template, end to end (issue 13): two templates with different tools kept warm at
their own targets by the pool's loop, real runtime processes of the local provider, services'
vendor plugins on the vendor fakes; claims by template get that template's instance and tools;
killing everything leaves the vendors balanced and the sweep with nothing to remove."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pool.main import create_app as create_pool_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.fakes.tools import Vendors, vendor_fakes
from tests.pool.tick.conftest import SERVICES_KEY, pool_settings
from tests.support import free_port, serve

KEY = "test-pool-key"
OPERATOR = {"Authorization": f"Bearer {KEY}"}
SERVICES = {"Authorization": f"Bearer {SERVICES_KEY}"}
CHAT = {"slug": "chat", "name": "Chat", "tools": ["openrouter"], "poolPolicy": {"minIdle": 1}}
OFFICE = {
    "slug": "office",
    "name": "Office",
    "tools": ["openrouter", "agentmail", "telnyx"],
    "instructions": "File the mail.",
    "poolPolicy": {"minIdle": 2},
}


@dataclass
class Fleet:
    pool: httpx.AsyncClient
    services: httpx.AsyncClient
    vendors: Vendors


@pytest.fixture
async def fleet(
    monkeypatch: pytest.MonkeyPatch, pool_db_url: str, services_db_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    pool_port = free_port()
    with vendor_fakes(monkeypatch, pooled=False) as vendors:
        services_settings = ServicesSettings(
            pool_url=f"http://127.0.0.1:{pool_port}",
            environment="test",
            database_url=services_db_url,
            api_key=SERVICES_KEY,
            encryption_key="test-encryption-key",
            local_data_dir=str(tmp_path / "instances"),
            probe_timeout_seconds=1.0,
            local_stop_grace_seconds=3.0,
            default_tools=[],
        )
        async with serve(create_services_app(services_settings)) as services_url:
            # The default template keeps POOL_MIN_IDLE = 0: only the two templates are warmed.
            settings = pool_settings(
                pool_db_url, services_url, min_idle=0, max_total=8, api_key=KEY, tick_enabled=True
            )
            async with (
                serve(create_pool_app(settings), port=pool_port) as pool_url,
                httpx.AsyncClient(base_url=pool_url, timeout=60) as pool,
                httpx.AsyncClient(base_url=services_url, timeout=30) as services,
            ):
                yield Fleet(pool, services, vendors)


async def _pools(fleet: Fleet) -> dict[str, dict[str, Any]]:
    status = (await fleet.pool.get("/api/pool/status", headers=OPERATOR)).json()
    return {p["slug"]: p for p in status["templates"]}


async def _until(
    fleet: Fleet, done: Callable[[dict[str, dict[str, Any]]], bool], what: str
) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while not done(pools := await _pools(fleet)):
        assert time.monotonic() < deadline, f"{what} never happened: {pools}"
        await asyncio.sleep(0.3)
    return pools


async def _tools_of(fleet: Fleet, instance_id: str) -> set[str]:
    answer = (await fleet.services.get(f"/instances/{instance_id}", headers=SERVICES)).json()
    return {tool["toolId"] for tool in answer["tools"]}


async def _template_of(fleet: Fleet, instance_id: str) -> tuple[str, int]:
    for row in (await fleet.pool.get("/api/pool/instances", headers=OPERATOR)).json():
        if row["id"] == instance_id:
            return row["templateId"], row["templateVersion"]
    raise AssertionError(f"no instance {instance_id}")


async def test_two_templates_are_kept_warm_and_claims_get_their_own_tools(fleet: Fleet) -> None:
    ids = {}
    for spec in (CHAT, OFFICE):
        created = await fleet.pool.post("/api/templates", json=spec, headers=OPERATOR)
        assert created.status_code == 201, created.text
        ids[spec["slug"]] = created.json()["id"]

    def warm(p: dict[str, dict[str, Any]]) -> bool:
        return p["chat"]["counts"]["idle"] == 1 and p["office"]["counts"]["idle"] == 2

    pools = await _until(fleet, warm, "both templates warm")
    assert (pools["chat"]["target"], pools["office"]["target"], pools["default"]["target"]) == (1, 2, 0)
    assert sum(pools["default"]["counts"].values()) == 0

    office = await fleet.pool.post(
        "/api/pool/claim", json={"templateId": ids["office"], "agentName": "Otto"}, headers=OPERATOR
    )
    assert office.status_code == 200, office.text
    office_id = office.json()["instanceId"]
    assert await _template_of(fleet, office_id) == (ids["office"], 1)
    assert await _tools_of(fleet, office_id) == {"openrouter", "agentmail", "telnyx"}
    # The template's instructions fill in what the claim left out.
    agents = (await fleet.pool.get("/api/pool/agents", headers=OPERATOR)).json()
    assert [a["instructions"] for a in agents if a["id"] == office_id] == ["File the mail."]

    # The original's clients name a template by `runtime` (its slug).
    chat = await fleet.pool.post("/api/pool/claim", json={"runtime": "chat"}, headers=OPERATOR)
    assert chat.status_code == 200, chat.text
    chat_id = chat.json()["instanceId"]
    assert (await _template_of(fleet, chat_id))[0] == ids["chat"]
    assert await _tools_of(fleet, chat_id) == {"openrouter"}

    # Each template refills to its own target.
    await _until(fleet, warm, "both templates refilled")
    # The default template has no idle instance: a claim naming none is answered 503, not served
    # from another template's pool.
    empty = await fleet.pool.post("/api/pool/claim", json={}, headers=OPERATOR)
    assert empty.status_code == 503, empty.text

    for row in (await fleet.pool.get("/api/pool/instances", headers=OPERATOR)).json():
        killed = await fleet.pool.delete(f"/api/pool/instances/{row['id']}", headers=OPERATOR)
        assert killed.status_code == 200, killed.text
    for spec in (CHAT, OFFICE):
        archived = await fleet.pool.post(f"/api/templates/{ids[spec['slug']]}/archive", headers=OPERATOR)
        assert archived.status_code == 200, archived.text
    await _until(
        fleet,
        lambda p: all(sum(x["counts"].values()) == 0 for x in p.values()),
        "every instance gone after the templates were archived",
    )
    counts = fleet.vendors.counts()
    assert all(created == deleted for created, deleted in counts.values()), counts
    # Three office instances (two warm, one refill) and two chat ones at least.
    assert counts["telnyx"][0] >= 3 and counts["openrouter"][0] >= 5
    sweep = (await fleet.services.post("/sweep", headers=SERVICES)).json()
    assert (sweep["removed"], sweep["orphans"], sweep["errors"]) == (0, [], [])
