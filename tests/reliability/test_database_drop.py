"""Every PostgreSQL connection of both apps is killed (pg_terminate_backend, as a database
failover or restart would): the apps answer the next requests without a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings as PoolSettings
from pool.main import create_app as create_pool_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from services.platforms.registry import PLATFORMS
from tests.fakes.fleet import FakeFleet
from tests.fakes.platform import MemoryPlatform
from tests.pool.conftest import AUTH as POOL_AUTH
from tests.pool.conftest import FakeServices
from tests.pool.factories import add_fleet_instances
from tests.support import serve

SERVICES_AUTH = {"Authorization": "Bearer test-services-key"}
BODY = {"agentName": "Ada", "instructions": "hi"}


async def terminate_backends(admin_url: str, *databases: str) -> int:
    conn = await asyncpg.connect(admin_url)
    try:
        killed = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid()",
            list(databases),
        )
    finally:
        await conn.close()
    return len(killed)


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def test_both_apps_recover_from_dropped_database_connections(
    postgres_admin_url: str,
    pool_db_url: str,
    services_db_url: str,
    pool_settings: Callable[..., PoolSettings],
    fleet: FakeFleet,
    fake_services: FakeServices,
    pool_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_fleet_instances(pool_sessions, fleet, 4)
    monkeypatch.setitem(PLATFORMS, "memory", lambda settings, client: MemoryPlatform())
    services_settings = ServicesSettings(
        environment="test",
        database_url=services_db_url,
        api_key="test-services-key",
        encryption_key="test-encryption-key",
        local_data_dir=str(tmp_path / "instances"),
        platform="memory",
        sweep_interval_seconds=0,
    )
    pool_app = create_pool_app(pool_settings(services_url=fake_services.url))
    async with (
        serve(pool_app) as pool,
        serve(create_services_app(services_settings)) as services,
        httpx.AsyncClient(timeout=30) as http,
    ):

        async def exercise(round_: int) -> None:
            # Each request opens (or reuses) pooled connections: the ones killed are reused here.
            for _ in range(3):
                assert (await http.get(f"{pool}/healthz")).status_code == 200
                assert (await http.get(f"{pool}/api/pool/counts", headers=POOL_AUTH)).status_code == 200
                assert (await http.get(f"{services}/healthz")).status_code == 200
                batch = await http.post(f"{services}/status/batch", json={}, headers=SERVICES_AUTH)
                assert batch.status_code == 200, batch.text
            created = await http.post(
                f"{services}/create-instance",
                json={"instanceId": f"dbdrop{round_:06d}", "name": "a"},
                headers=SERVICES_AUTH,
            )
            # Accepted at once; services' workers make it (and ride out the terminated connections).
            assert created.status_code == 202, created.text
            claim = await http.post(f"{pool}/api/pool/claim", json=BODY, headers=POOL_AUTH)
            assert claim.status_code == 200, claim.text

        await exercise(1)
        for round_ in (2, 3):
            killed = await terminate_backends(
                postgres_admin_url, database_of(pool_db_url), database_of(services_db_url)
            )
            assert killed > 0  # the apps' pooled connections (and this test's) were there to kill
            await exercise(round_)
