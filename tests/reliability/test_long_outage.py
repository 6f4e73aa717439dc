"""A long services outage: after thousands of failed creates, a create still fails cleanly.

The backoff grows as 2^failures; uncapped, PostgreSQL's power() overflowed past ~1,023 failures,
so every later create (tick refill or operator replenish) answered 500 and left its `creating`
row behind. Found by the deep fuzz run of the pool (replenish against a services with no create).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from pool.models import Instance, TickState
from tests.pool.conftest import AUTH, FakeServices, running


async def test_a_create_after_thousands_of_failures_fails_cleanly_and_frees_its_row(
    pool_settings: Callable[..., Settings],
    fake_services: FakeServices,
    pool_sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with pool_sessions.begin() as session:
        session.add(TickState(fleet="default", consecutive_create_failures=5000))
    # The fake services has no /create-instance: every create fails.
    async with running(create_app(pool_settings(services_url=fake_services.url))) as client:
        response = await client.post("/api/pool/replenish", json={"count": 1}, headers=AUTH)
    assert response.status_code < 500, response.text
    async with pool_sessions() as session:
        assert list(await session.scalars(select(Instance))) == []
        state = await session.get(TickState, "default")
    assert state is not None and state.consecutive_create_failures == 5001
    assert state.backoff_until is not None
