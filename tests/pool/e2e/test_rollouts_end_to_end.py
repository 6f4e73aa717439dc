"""Rollouts on the fake Railway, the whole product over real HTTP (DESIGN.md §11): the pool with its
own loop, services with the Railway provider, a real runtime behind each deploy.

- `recreate` replaces every idle instance of the old version and the template never has fewer idle
  instances than its floor while it does;
- a `canary` whose new image crashes rolls the template back by itself, with the reason, and the
  old version keeps serving: claims during the rollout are answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from tests.pool.e2e.placement_system import RAILWAY_ENV, TOKEN, System, destroy_all
from tests.support import free_port, serve, until

pytestmark = [pytest.mark.timeout(180)]
BROKEN = "ghcr.io/acme/agent:broken"


@pytest.fixture
async def system(
    services_db_url: str, pool_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[System]:
    fake = FakeRailway(
        FakeSettings(tokens={TOKEN}),
        DeploySettings(
            queued_seconds=0.05,
            building_seconds=0.05,
            deploying_seconds=0.1,
            image_outcomes={BROKEN: "crash"},
        ),
    )
    async with serve(fake.app()) as railway_url:
        for key, value in {**RAILWAY_ENV, "RAILWAY_API_URL": f"{railway_url}/graphql/v2"}.items():
            monkeypatch.setenv(key, value)
        project = fake.store.create_project("fleet", None, TOKEN, "production")
        yield System(fake, project.id, services_db_url, pool_db_url, free_port())


def _shared(system: System) -> list[dict[str, Any]]:
    settings = {"mode": "shared", "project_id": system.project_id}
    return [{"name": "railway", "provider": "railway", "settings": settings, "priority": 1, "capacity": None}]


async def _pool_of(pool: httpx.AsyncClient, template_id: str) -> dict[str, Any]:
    status = (await pool.get("/api/pool/status")).json()
    return next(p for p in status["templates"] if p["templateId"] == template_id)


@contextlib.asynccontextmanager
async def _watch_idle(pool: httpx.AsyncClient, template_id: str, seen: list[int]) -> AsyncIterator[None]:
    """Record the template's idle count every 50 ms while the block runs."""

    async def sample() -> None:
        while True:
            seen.append((await _pool_of(pool, template_id))["counts"]["idle"])
            await asyncio.sleep(0.05)

    task = asyncio.create_task(sample())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_recreate_replaces_the_old_version_never_below_its_floor(system: System) -> None:
    async with system.services(system.services_settings(_shared(system))):
        async with system.pool(min_idle=0, max_total=8) as pool:
            spec = {
                "slug": "rec",
                "name": "Rec",
                "image": "ghcr.io/acme/agent:1",
                "tools": [],
                "poolPolicy": {"minIdle": 3},
                "rollout": {"strategy": "recreate", "floor": 2},
            }
            template_id = (await pool.post("/api/templates", json=spec)).json()["id"]

            async def warm(version: str) -> bool:
                # Only this version idle, at least the target (the surge's one extra may stay).
                by_version = (await _pool_of(pool, template_id))["idleByVersion"]
                return set(by_version) == {version} and by_version[version] >= 3

            await until(lambda: warm("1"))
            idle: list[int] = []
            async with _watch_idle(pool, template_id, idle):
                changed = await pool.patch(
                    f"/api/templates/{template_id}", json={"image": "ghcr.io/acme/agent:2"}
                )
                assert changed.status_code == 200, changed.text
                await until(lambda: warm("2"))
                done = await until(lambda: _phase(pool, template_id, "done"), timeout=30)
            assert min(idle) >= 2, idle
            assert done["rollout"]["strategy"] == "recreate"
            store = system.fake.store
            live = {s.id for s in store.live_services(system.project_id)}
            images = {i.image for i in store.instances.values() if i.service_id in live and not i.deleted_at}
            assert images == {"ghcr.io/acme/agent:2"}
        await destroy_all(system.port)


async def _phase(pool: httpx.AsyncClient, template_id: str, phase: str) -> dict[str, Any] | None:
    p = await _pool_of(pool, template_id)
    return p if (p.get("rollout") or {}).get("phase") == phase else None


async def test_a_crashing_canary_rolls_back_by_itself_and_the_old_version_keeps_serving(
    system: System,
) -> None:
    async with system.services(system.services_settings(_shared(system))):
        async with system.pool(min_idle=0, max_total=8) as pool:
            spec = {
                "slug": "can",
                "name": "Can",
                "image": "ghcr.io/acme/agent:1",
                "tools": [],
                "poolPolicy": {"minIdle": 2},
                "rollout": {"strategy": "canary", "count": 1, "windowSeconds": 60},
            }
            template_id = (await pool.post("/api/templates", json=spec)).json()["id"]
            await until(lambda: _idle_versions(pool, template_id, {"1": 2}))

            changed = await pool.patch(f"/api/templates/{template_id}", json={"image": BROKEN})
            assert changed.status_code == 200 and changed.json()["currentVersion"] == 2, changed.text
            claims = []
            for _ in range(2):
                claims.append(await pool.post("/api/pool/claim?wait=30", json={"templateId": template_id}))
                await asyncio.sleep(0.3)
            rolled = await until(lambda: _phase(pool, template_id, "rolled_back"), timeout=60)
            assert rolled["currentVersion"] == 1
            assert "canary" in rolled["rollout"]["reason"] and "crashed" in rolled["rollout"]["reason"]
            template = (await pool.get(f"/api/templates/{template_id}")).json()
            assert (template["currentVersion"], template["current"]["image"]) == (1, "ghcr.io/acme/agent:1")
            # Claims during the rollout were answered (by version 1, or by the canary before it crashed).
            assert [c.status_code for c in claims] == [200, 200], [c.text for c in claims]
            # The old version serves on: the pool refills with version 1 only.
            await until(lambda: _idle_versions(pool, template_id, {"1": 2}))
        await destroy_all(system.port)


async def _idle_versions(pool: httpx.AsyncClient, template_id: str, wanted: dict[str, int]) -> bool:
    return bool((await _pool_of(pool, template_id))["idleByVersion"] == wanted)
