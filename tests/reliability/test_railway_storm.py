"""Ticks through the whole chain (pool tick → services → Railway provider → the fake Railway, with
real runtime processes behind its domains) while Railway answers every call with 429, then with
HTTP-200 `errors[]`: no status changes, nothing created or destroyed; afterwards all is as before.

(tests/services/platforms/railway/test_resilience.py shows the provider raising TransientError
in a storm; this shows what the tick makes of it.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from pool.tick.loop import TickRunner
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.pool.tick.conftest import SERVICES_KEY, pool_runner, pool_settings, statuses
from tests.support import serve

TOKEN = "rw-storm-token"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def railway() -> AsyncIterator[tuple[FakeRailway, str]]:
    fake = FakeRailway(
        FakeSettings(tokens={TOKEN}),
        DeploySettings(queued_seconds=0.05, building_seconds=0.05, deploying_seconds=0.1),
    )
    async with serve(fake.app()) as url:
        yield fake, url


async def warm(runner: TickRunner, count: int, timeout: float = 60) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        await runner.run_once()
        await runner.ctx.settle()
        found = await statuses(runner.ctx)
        if sorted(found.values()) == ["idle"] * count:
            return found
        assert time.monotonic() < deadline, f"never warm: {found}"
        await asyncio.sleep(0.3)


async def test_429_storm_and_http_200_errors_during_ticks_change_no_status(
    railway: tuple[FakeRailway, str],
    services_db_url: str,
    pool_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake, railway_url = railway
    project = fake.store.create_project("fleet", None, TOKEN, "production")
    for key, value in {
        "RAILWAY_API_TOKEN": TOKEN,
        "RAILWAY_API_URL": f"{railway_url}/graphql/v2",
        "RAILWAY_MODE": "shared",
        "RAILWAY_PROJECT_ID": project.id,
        "RAILWAY_PUBLIC_SCHEME": "http",
        "RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS": "0",
        "RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS": "0",
        "RAILWAY_BACKOFF_SECONDS": "0.01",
        "RAILWAY_MAX_RETRY_AFTER_SECONDS": "0.05",
    }.items():
        monkeypatch.setenv(key, value)
    services_settings = ServicesSettings(
        environment="test",
        database_url=services_db_url,
        api_key=SERVICES_KEY,
        encryption_key="test-encryption-key",
        local_data_dir=str(tmp_path / "instances"),
        platform="railway",
        probe_timeout_seconds=1.0,
        sweep_interval_seconds=0,
    )
    async with serve(create_services_app(services_settings)) as services_url:
        settings = pool_settings(
            pool_db_url, services_url, min_idle=2, max_total=2, failed_probes_for_death=1
        )
        async with pool_runner(settings) as runner:
            before = await warm(runner, 2)
            calls_before = sum(fake.calls.values())

            for storm in ("429", "http-200 errors"):
                if storm == "429":
                    fake.settings.requests_per_second = 0  # every call over the rate: 429 + Retry-After
                else:
                    fake.settings.requests_per_second = None
                    fake.settings.error_rate = 1.0  # every call: HTTP 200 with errors[]
                for _ in range(3):
                    result = await runner.run_once()
                    assert result is not None
                    assert result.error is not None and "platform error" in result.error, result.error
                    assert not +result.actions, (storm, result.actions)
                    assert await statuses(runner.ctx) == before, storm
            assert sum(fake.calls.values()) > calls_before  # the storm was met, not skipped
            assert fake.rejected["429"] > 0

            fake.settings.error_rate = 0.0
            after = await runner.run_once()
            assert after is not None and after.error is None and not +after.actions
            assert await statuses(runner.ctx) == before
            # The instances were healthy all along.
            async with httpx.AsyncClient(timeout=5) as http:
                batch = await runner.ctx.services.status_batch(timeout=60.0)
                for instance_id in before:
                    seen = batch.instances[instance_id]
                    assert seen.deploy_status == "running" and seen.url
                    assert (await http.get(f"{seen.url}/pool/health")).status_code == 200
