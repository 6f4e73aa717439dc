"""The instance event log: the send rate limit counts across callers (the pool database, not a
process), answers when to retry, and retention pruning deletes only old entries."""

from __future__ import annotations

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.callbacks import events
from pool.models import InstanceEvent
from shared.db import make_engine, make_sessionmaker


@pytest.fixture
async def sessions(pool_db_url: str):  # type: ignore[no-untyped-def]
    engine = make_engine(pool_db_url, pool_size=5)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def test_send_limit_and_retry_after(sessions: async_sessionmaker[AsyncSession]) -> None:
    for _ in range(2):
        await events.reserve_send(
            sessions, instance_id="aaaaaaaaaaaa", kind="proxy.sms.send", summary={}, limit=2, window=60
        )
    with pytest.raises(events.TooManyRequests) as refused:
        await events.reserve_send(
            sessions, instance_id="aaaaaaaaaaaa", kind="proxy.email.send", summary={}, limit=2, window=60
        )
    assert 1 <= refused.value.retry_after <= 60
    # Another instance has its own budget; reads do not count.
    await events.reserve_send(
        sessions, instance_id="bbbbbbbbbbbb", kind="proxy.sms.send", summary={}, limit=2, window=60
    )
    await events.record(
        sessions, instance_id="aaaaaaaaaaaa", kind="proxy.email.read", actor="instance", summary={}
    )
    # Once the window has passed, it may send again.
    async with sessions.begin() as session:
        await session.execute(update(InstanceEvent).values(at=text("now() - interval '2 minutes'")))
    await events.reserve_send(
        sessions, instance_id="aaaaaaaaaaaa", kind="proxy.sms.send", summary={}, limit=2, window=60
    )


async def test_prune_keeps_recent_entries(sessions: async_sessionmaker[AsyncSession]) -> None:
    old = await events.record(
        sessions, instance_id="aaaaaaaaaaaa", kind="proxy.info", actor="instance", summary={}
    )
    await events.record(sessions, instance_id="aaaaaaaaaaaa", kind="proxy.info", actor="instance", summary={})
    async with sessions.begin() as session:
        await session.execute(
            update(InstanceEvent).where(InstanceEvent.id == old).values(at=text("now() - interval '3 hours'"))
        )
    assert await events.prune(sessions, retention_hours=2) == 1
    async with sessions() as session:
        left = await events.list_events(session, instance_id="aaaaaaaaaaaa", limit=10)
    assert len(left) == 1 and left[0].id != old
