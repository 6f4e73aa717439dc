"""A claimed instance that crashes becomes `crashed`, is never destroyed by the loop, and leaves
through the operator's dismiss route: the whole pool app against the real services app."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from pool.main import create_app
from tests.pool.conftest import running
from tests.pool.tick.conftest import Services, pool_settings

pytestmark = pytest.mark.slow
KEY = "test-pool-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


async def counts(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/api/pool/counts", headers=AUTH)
    assert response.status_code == 200
    return dict(response.json())


async def reconcile_until(client: httpx.AsyncClient, want: dict[str, int], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.post("/api/pool/reconcile", headers=AUTH)
        assert response.status_code == 200, response.text
        found = await counts(client)
        if all(found.get(status) == n for status, n in want.items()):
            return
        assert time.monotonic() < deadline, f"never reached {want}: {found}"
        await asyncio.sleep(0.3)


async def test_claimed_crash_becomes_crashed_and_is_dismissed(services: Services, pool_db_url: str) -> None:
    settings = pool_settings(pool_db_url, services.url, min_idle=1, api_key=KEY, tick_enabled=False)
    async with running(create_app(settings)) as client:
        await reconcile_until(client, {"idle": 1})
        claim = await client.post(
            "/api/pool/claim", headers=AUTH, json={"agentName": "a", "instructions": "hi"}
        )
        assert claim.status_code == 200, claim.text
        victim = claim.json()["instanceId"]

        services.kill(victim)
        await reconcile_until(client, {"crashed": 1, "idle": 1})
        # Several more ticks: crashed stays crashed, and is not torn down.
        for _ in range(3):
            await client.post("/api/pool/reconcile", headers=AUTH)
        assert (await counts(client))["crashed"] == 1
        assert (services.data_dir / victim).exists()

        dismissed = await client.delete(f"/api/pool/crashed/{victim}", headers=AUTH)
        assert dismissed.status_code == 200, dismissed.text
        found = await counts(client)
        assert (found["crashed"], found["claimed"]) == (0, 0)
        assert not (services.data_dir / victim).exists()
