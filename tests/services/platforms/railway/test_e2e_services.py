"""Services with the Railway provider pointed at the fake, over real HTTP, with real runtime
processes behind the fake's domains: create → SUCCESS + healthy → provision → configure →
redeploy → destroy, leaving nothing in the fake."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from devtools.railway_fake import DeploySettings
from services.config import Settings
from services.main import create_app
from tests.services.conftest import AUTH, create_and_wait
from tests.services.platforms.railway.harness import TOKEN, Harness
from tests.support import serve

pytestmark = pytest.mark.timeout(90)

INSTANCE = "e2erailway01"


@pytest.fixture
def deploy_settings() -> DeploySettings:
    return DeploySettings(queued_seconds=0.05, building_seconds=0.05, deploying_seconds=0.1)


async def wait_healthy(client: httpx.AsyncClient, base: str, timeout: float = 30) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    observed: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        batch = (await client.post(f"{base}/status/batch", json={}, headers=AUTH)).json()
        observed = batch["instances"].get(INSTANCE, {})
        if observed.get("deployStatus") == "running" and (observed.get("health") or {}).get("ok"):
            assert batch["platformOk"] is True
            return batch
        await asyncio.sleep(0.2)
    raise AssertionError(f"never SUCCESS and healthy: {observed}")


@pytest.mark.parametrize("mode", ["shared", "per-instance"])
async def test_every_route_through_the_railway_provider_leaves_nothing_behind(
    railway: Harness, make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    railway_env = {
        "RAILWAY_API_TOKEN": TOKEN,
        "RAILWAY_API_URL": f"{railway.url}/graphql/v2",
        "RAILWAY_MODE": mode,
        "RAILWAY_PUBLIC_SCHEME": "http",
        "RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS": "0",
        "RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS": "0",
    }
    if mode == "shared":
        railway.shared_project()
        railway_env["RAILWAY_PROJECT_ID"] = railway.shared_project_id
    for key, value in railway_env.items():
        monkeypatch.setenv(key, value)
    app = create_app(make_settings(platform="railway", sweep_interval_seconds=0))
    async with serve(app) as base, httpx.AsyncClient(timeout=30) as client:
        body = await create_and_wait(
            client, {"instanceId": INSTANCE, "name": "agent one"}, url=f"{base}/create-instance"
        )
        assert body["phase"] == "deploying", body
        assert railway.fake.calls["EnvironmentPatchCommit"] == 1
        await wait_healthy(client, base)
        assert railway.fake.calls["EnvironmentServiceInstances" if mode == "shared" else "Projects"] >= 1

        provisioned = await client.post(
            f"{body['url']}/pool/provision",
            json={"agentName": "Ada", "instructions": "Be brief."},
            headers={"Authorization": f"Bearer {body['gatewayToken']}"},
        )
        assert provisioned.status_code == 200, provisioned.text

        configured = await client.post(
            f"{base}/configure/{INSTANCE}", json={"variables": {"EXTRA_FLAG": "1"}}, headers=AUTH
        )
        assert configured.status_code == 200, configured.text
        (service,) = [s for s in railway.fake.store.services.values() if not s.deleted_at]
        deploys = [d for d in railway.fake.store.deployments.values() if d.service_id == service.id]
        assert len(deploys) == 1

        redeployed = await client.post(f"{base}/redeploy/{INSTANCE}", json={"image": "img:2"}, headers=AUTH)
        assert redeployed.status_code == 200, redeployed.text
        latest = [d for d in railway.fake.store.deployments.values() if d.service_id == service.id][-1]
        assert latest.image == "img:2" and latest.variables["EXTRA_FLAG"] == "1"
        await wait_healthy(client, base)

        destroyed = await client.delete(f"{base}/destroy/{INSTANCE}", headers=AUTH)
        assert destroyed.status_code == 200, destroyed.text
        assert railway.fake.deploys.running() == []
        leftovers = railway.fake.store.leftovers()
        assert leftovers == {
            "projects": ["fleet"] if mode == "shared" else [],
            "services": [],
            "volumes": [],
            "domains": [],
        }
        batch = (await client.post(f"{base}/status/batch", json={}, headers=AUTH)).json()
        assert INSTANCE not in batch["instances"]
