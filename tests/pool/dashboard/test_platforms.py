"""The dashboard's summary shows services' platforms as the tick last recorded them (pool DB only)."""

from __future__ import annotations

import httpx
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert

from pool.models import TickState
from shared.db import make_engine, make_sessionmaker
from tests.pool.dashboard.conftest import Dashboard, log_in

PLATFORMS = [
    {
        "name": "railway-shared",
        "provider": "railway",
        "priority": 1,
        "capacity": 90,
        "inUse": 90,
        "creating": 0,
        "health": "full",
    },
    {
        "name": "railway-projects",
        "provider": "railway",
        "priority": 2,
        "capacity": None,
        "inUse": 4,
        "creating": 1,
        "health": "backing off",
        "backoffUntil": "2026-11-30T12:00:30Z",
        "consecutiveFailures": 3,
        "lastError": "ProjectCreate: Problem processing request",
    },
]


async def test_the_summary_lists_each_platform_with_its_use_and_health(
    dashboard: Dashboard, client: httpx.AsyncClient
) -> None:
    engine = make_engine(dashboard.settings.database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            await session.execute(
                insert(TickState).values(
                    fleet="default", platforms=PLATFORMS, platforms_observed_at=func.now()
                )
            )
    finally:
        await engine.dispose()
    await log_in(client)
    summary = (await client.get("/dashboard/partials/summary")).text
    assert 'id="platforms"' in summary
    assert '<tr data-platform="railway-shared">' in summary and "no cap" in summary
    assert "backing off until 12:00:30 UTC (3 failed)" in summary
    assert "ProjectCreate: Problem processing request" in summary
