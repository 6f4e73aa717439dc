"""Schemathesis against both apps' OpenAPI schemas with valid credentials: no 5xx, and every
response matches the schema and content type its operation declares.

A few examples per operation run in `make test`; the deep run (`slow`) runs many more.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings as PoolSettings
from pool.main import create_app as create_pool_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from services.platforms.registry import PLATFORMS
from services.tools.registry import TOOLS
from tests.fakes.echo import EchoTool
from tests.fakes.fleet import FakeFleet
from tests.fakes.platform import MemoryPlatform
from tests.pool.conftest import AUTH as POOL_AUTH
from tests.pool.conftest import FakeServices
from tests.pool.factories import add_fleet_instances
from tests.reliability.fuzz import fuzz_in_thread
from tests.support import serve

SERVICES_KEY = "test-services-key"
QUICK, DEEP = 8, 150


async def fuzz_pool(
    examples: int,
    pool_settings: Callable[..., PoolSettings],
    fleet: FakeFleet,
    fake_services: FakeServices,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await add_fleet_instances(sessions, fleet, 20)
    await add_fleet_instances(sessions, fleet, 3, status="pending_acceptance")
    app = create_pool_app(pool_settings(services_url=fake_services.url, claim_wait_max_seconds=1))
    async with serve(app) as url:
        report = await fuzz_in_thread(app, url, POOL_AUTH, examples)
    print(f"pool: {report.calls} calls, statuses {dict(sorted(report.statuses.items()))}")
    assert report.failures == [], "\n\n".join(report.failures)
    assert report.calls >= examples


async def fuzz_services(
    examples: int, services_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform, tool = MemoryPlatform(), EchoTool()
    monkeypatch.setitem(PLATFORMS, "memory", lambda settings, client: platform)
    monkeypatch.setitem(TOOLS, "echo", lambda context: tool)
    settings = ServicesSettings(
        environment="test",
        database_url=services_db_url,
        api_key=SERVICES_KEY,
        encryption_key="test-encryption-key",
        local_data_dir=str(tmp_path / "instances"),
        platform="memory",
        sweep_interval_seconds=0,
        probe_timeout_seconds=0.5,
    )
    app = create_services_app(settings)
    async with serve(app) as url:
        report = await fuzz_in_thread(app, url, {"Authorization": f"Bearer {SERVICES_KEY}"}, examples)
    print(f"services: {report.calls} calls, statuses {dict(sorted(report.statuses.items()))}")
    assert report.failures == [], "\n\n".join(report.failures)
    assert report.calls >= examples


async def test_fuzz_pool(
    pool_settings: Callable[..., PoolSettings],
    fleet: FakeFleet,
    fake_services: FakeServices,
    pool_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fuzz_pool(QUICK, pool_settings, fleet, fake_services, pool_sessions)


async def test_fuzz_services(services_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await fuzz_services(QUICK, services_db_url, tmp_path, monkeypatch)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_fuzz_pool_deep(
    pool_settings: Callable[..., PoolSettings],
    fleet: FakeFleet,
    fake_services: FakeServices,
    pool_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await fuzz_pool(DEEP, pool_settings, fleet, fake_services, pool_sessions)


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_fuzz_services_deep(
    services_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fuzz_services(DEEP, services_db_url, tmp_path, monkeypatch)
