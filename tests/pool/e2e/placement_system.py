"""The placement end-to-end tests' system: the fake Railway, services with several platforms on a
fixed port (restarted with new settings when a test changes them), and the pool with its own loop,
all over real HTTP (tests/pool/e2e/test_placement_end_to_end.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from devtools.railway_fake import FakeRailway
from pool.main import create_app as create_pool_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.pool.tick.conftest import SERVICES_KEY, pool_settings
from tests.support import serve

TOKEN = "rw-placement-token"
KEY = "test-pool-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SERVICES_AUTH = {"Authorization": f"Bearer {SERVICES_KEY}"}
RAILWAY_ENV = {
    "RAILWAY_API_TOKEN": TOKEN,
    "RAILWAY_PUBLIC_SCHEME": "http",
    "RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS": "0",
    "RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS": "0",
    "RAILWAY_REQUESTS_PER_SECOND": "1000",
    "RAILWAY_MAX_ATTEMPTS": "3",
    "RAILWAY_BACKOFF_SECONDS": "0.01",
    "RAILWAY_MAX_RETRY_AFTER_SECONDS": "0.05",
}


def railway_pair(project_id: str, *, shared_capacity: int | None) -> list[dict[str, Any]]:
    """The canonical example of docs/operating.md: a shared project, then project per instance."""
    return [
        {
            "name": "railway-shared",
            "provider": "railway",
            "settings": {"mode": "shared", "project_id": project_id},
            "priority": 1,
            "capacity": shared_capacity,
        },
        {
            "name": "railway-projects",
            "provider": "railway",
            "settings": {"mode": "per-instance"},
            "priority": 2,
            "capacity": None,
        },
    ]


@dataclass
class System:
    fake: FakeRailway
    project_id: str
    services_db_url: str
    pool_db_url: str
    port: int = 0

    def services_settings(self, platforms: list[dict[str, Any]], **values: Any) -> ServicesSettings:
        return ServicesSettings(
            environment="test",
            database_url=self.services_db_url,
            api_key=SERVICES_KEY,
            encryption_key="test-encryption-key",
            platforms=platforms,
            probe_timeout_seconds=1.0,
            local_stop_grace_seconds=3.0,
            sweep_interval_seconds=0,
            **values,
        )

    def services(self, settings: ServicesSettings) -> contextlib.AbstractAsyncContextManager[str]:
        """Services on the same port every time, so a restart with new settings keeps the pool's URL."""
        return serve(create_services_app(settings), port=self.port)

    @contextlib.asynccontextmanager
    async def pool(self, **values: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = pool_settings(
            self.pool_db_url, f"http://127.0.0.1:{self.port}", api_key=KEY, tick_enabled=True, **values
        )
        async with (
            serve(create_pool_app(settings)) as url,
            httpx.AsyncClient(base_url=url, headers=AUTH, timeout=60) as client,
        ):
            yield client

    def shared_services(self) -> list[str]:
        return sorted(s.name for s in self.fake.store.live_services(self.project_id))

    def instance_projects(self) -> list[str]:
        return sorted(
            p.name for p in self.fake.store.projects.values() if not p.deleted_at and p.id != self.project_id
        )


async def placed(port: int) -> dict[str, str]:
    """Each instance's platform, as services records it ("" while not placed yet)."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers=SERVICES_AUTH) as services:
        page = (await services.get("/instances")).json()
    return {i["instanceId"]: i["platform"] or "" for i in page["instances"]}


async def counts(pool: httpx.AsyncClient) -> dict[str, int]:
    return dict((await pool.get("/api/pool/counts")).json())


async def platforms_seen(pool: httpx.AsyncClient, **in_use: int) -> dict[str, dict[str, Any]] | None:
    """The platforms in the pool's status once its tick recorded the given use (else None)."""
    body = (await pool.get("/api/pool/status")).json()
    views = {p["name"]: p for p in body["platforms"]}
    return views if {name: views.get(name, {}).get("inUse") for name in in_use} == in_use else None


async def destroy_all(port: int) -> None:
    """Everything services still has, once the pool (which would refill) is stopped."""
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=SERVICES_AUTH, timeout=60
    ) as services:
        for instance_id in await placed(port):
            destroyed = await services.delete(f"/destroy/{instance_id}")
            assert destroyed.status_code == 200, destroyed.text


async def idle(pool: httpx.AsyncClient, n: int) -> bool:
    return (await counts(pool))["idle"] >= n
