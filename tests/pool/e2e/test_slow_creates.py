"""Finding 3 of issue 11: creates slower than the pool's services timeout are not abandoned.

The whole product on the fake Railway (per-instance mode: one project per instance) with ONE token
and a project-creation cooldown, so four concurrent creates are paced one cooldown apart inside
services: the third and fourth take longer than the pool's `POOL_SERVICES_TIMEOUT_SECONDS`. With
the synchronous create, the pool timed out, its retry got 409, it deleted its rows, and services
finished instances the pool then destroyed as orphans. With the asynchronous create (DESIGN §3)
the pool keeps every row until services reports its phase: all four become idle, nothing is
destroyed, exactly four projects are made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from sqlalchemy import select

from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from pool.main import create_app as create_pool_app
from pool.models import Instance
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from shared.db import make_engine, make_sessionmaker
from tests.pool.tick.conftest import SERVICES_KEY, pool_settings
from tests.support import serve, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "rw-slow-token"
KEY = "test-pool-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
COOLDOWN = 1.5
# Shorter than the 3rd create's wait (2 cooldowns) inside services.
SERVICES_TIMEOUT = 2.0
FLEET = 4


@pytest.fixture
async def slow_railway(
    services_db_url: str, pool_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeRailway, httpx.AsyncClient, Callable[[], Awaitable[dict[str, str]]]]]:
    fake = FakeRailway(
        FakeSettings(tokens={TOKEN}),
        DeploySettings(queued_seconds=0.05, building_seconds=0.05, deploying_seconds=0.1),
    )
    engine = make_engine(pool_db_url)
    sessionmaker = make_sessionmaker(engine)

    async def rows() -> dict[str, str]:
        async with sessionmaker() as session:
            return {r.id: r.status for r in await session.scalars(select(Instance))}

    try:
        async with serve(fake.app()) as railway_url:
            env = {
                "RAILWAY_API_TOKEN": TOKEN,
                "RAILWAY_API_URL": f"{railway_url}/graphql/v2",
                "RAILWAY_MODE": "per-instance",
                "RAILWAY_PUBLIC_SCHEME": "http",
                "RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS": str(COOLDOWN),
                "RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS": "0",
                "RAILWAY_REQUESTS_PER_SECOND": "1000",
                "RAILWAY_BACKOFF_SECONDS": "0.01",
                "RAILWAY_MAX_RETRY_AFTER_SECONDS": "0.05",
            }
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            services_settings = ServicesSettings(
                environment="test",
                database_url=services_db_url,
                api_key=SERVICES_KEY,
                encryption_key="test-encryption-key",
                platform="railway",
                probe_timeout_seconds=1.0,
                sweep_interval_seconds=0,
            )
            async with serve(create_services_app(services_settings)) as services_url:
                settings = pool_settings(
                    pool_db_url,
                    services_url,
                    min_idle=FLEET,
                    max_total=FLEET,
                    create_concurrency=FLEET,
                    services_timeout_seconds=SERVICES_TIMEOUT,
                    # An orphan would be destroyed on the next tick: the old failure shows at once.
                    orphan_grace_seconds=1.0,
                    api_key=KEY,
                    tick_enabled=True,
                    tick_interval_seconds=0.5,
                )
                async with (
                    serve(create_pool_app(settings)) as pool_url,
                    httpx.AsyncClient(base_url=pool_url, headers=AUTH, timeout=60) as pool,
                ):
                    yield fake, pool, rows
    finally:
        await engine.dispose()


async def test_creates_slower_than_the_pools_timeout_are_kept_until_idle_and_nothing_is_destroyed(
    slow_railway: tuple[FakeRailway, httpx.AsyncClient, Callable[[], Awaitable[dict[str, str]]]],
) -> None:
    fake, pool, rows = slow_railway
    first: dict[str, str] = await until(rows)
    assert len(first) == FLEET

    async def all_idle() -> bool:
        return sorted((await rows()).values()) == ["idle"] * FLEET

    await until(all_idle, timeout=60)
    # The rows the pool reserved first are the ones that became idle: none dropped, none replaced.
    assert set(await rows()) == set(first)
    projects = list(fake.store.projects.values())
    assert len(projects) == FLEET
    assert [p.name for p in projects if p.deleted_at] == []
    assert fake.calls.get("ProjectDelete", 0) == 0
