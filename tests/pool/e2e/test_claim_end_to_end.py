"""The whole product on one machine: the pool app (its own reconcile loop running) and the services
app, both served over real HTTP, with real runtime processes from the local provider."""

from __future__ import annotations

import httpx
import pytest

from pool.main import create_app
from shared.errors import error_body
from tests.pool.tick.conftest import Services, pool_settings
from tests.support import serve, until

pytestmark = pytest.mark.slow
KEY = "test-pool-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SERVICES_AUTH = {"Authorization": "Bearer test-services-key"}


async def test_warm_up_claim_join_kill_and_empty_pool_through_real_http(
    services: Services, pool_db_url: str
) -> None:
    # max_total caps the fleet at 3, so once 3 are claimed the loop cannot refill: the pool is empty.
    settings = pool_settings(
        pool_db_url, services.url, min_idle=2, max_total=3, api_key=KEY, tick_enabled=True
    )
    async with (
        serve(create_app(settings)) as pool_url,
        httpx.AsyncClient(base_url=pool_url, timeout=60) as pool,
    ):

        async def counts() -> dict[str, int]:
            return dict((await pool.get("/api/pool/counts", headers=AUTH)).json())

        async def idle(n: int) -> bool:
            return (await counts())["idle"] >= n

        # Warm-up by the pool's own loop: rows go creating → starting → idle.
        await until(lambda: idle(2))

        created = await pool.post(
            "/api/pool/claim", headers=AUTH, json={"agentName": "Ada", "instructions": "hi"}
        )
        assert created.status_code == 200, created.text
        new = created.json()
        assert (new["status"], new["joined"], new["agentName"]) == ("created", False, "Ada")
        assert new["inviteUrl"].endswith(new["conversationId"])

        join_url = "https://convos.example/join/e2e"
        joined = await pool.post(
            "/api/pool/claim",
            headers=AUTH,
            json={"agentName": "Bo", "instructions": "hi", "joinUrl": join_url},
        )
        assert joined.status_code == 200, joined.text
        assert (joined.json()["status"], joined.json()["joined"], joined.json()["inviteUrl"]) == (
            "joined",
            True,
            join_url,
        )
        assert joined.json()["instanceId"] != new["instanceId"]

        # The runtime process itself now serves the conversation the pool recorded.
        agents = {a["id"]: a for a in (await pool.get("/api/pool/agents", headers=AUTH)).json()}
        assert agents[new["instanceId"]]["conversationId"] == new["conversationId"]
        assert agents[joined.json()["instanceId"]]["joinUrl"] == join_url

        # The claims woke the loop: it refills up to max_total (one more), then the third claim
        # takes it and a fourth finds the pool empty.
        await until(lambda: idle(1))
        third = await pool.post(
            "/api/pool/claim", headers=AUTH, json={"agentName": "Cy", "instructions": "hi"}
        )
        assert third.status_code == 200, third.text
        empty = await pool.post(
            "/api/pool/claim", headers=AUTH, json={"agentName": "Di", "instructions": "hi"}
        )
        assert empty.status_code == 503
        assert empty.headers["Retry-After"] == "5"
        assert empty.json() == error_body("Unavailable", "no idle instance available; retry later")

        # Kill: services tears the instance down (its process and files go), then the row goes.
        victim = new["instanceId"]
        killed = await pool.delete(f"/api/pool/instances/{victim}", headers=AUTH)
        assert killed.status_code == 200, killed.text
        assert not (services.data_dir / victim).exists()
        async with httpx.AsyncClient(base_url=services.url, headers=SERVICES_AUTH) as svc:
            batch = (await svc.post("/status/batch", json={"instanceIds": [victim], "probe": False})).json()
        assert victim not in batch["instances"]
        assert victim not in {a["id"] for a in (await pool.get("/api/pool/agents", headers=AUTH)).json()}
        # With room under max_total again, the loop refills and claims work again.
        await until(lambda: idle(1))
        again = await pool.post(
            "/api/pool/claim", headers=AUTH, json={"agentName": "Ed", "instructions": "hi"}
        )
        assert again.status_code == 200, again.text
