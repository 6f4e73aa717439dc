"""The instance event log's migration goes up and back down cleanly."""

from __future__ import annotations

import asyncio

import asyncpg

from alembic import command
from shared.db import libpq_url
from shared.migrations import alembic_config, upgrade_async
from tests.support import DatabaseFactory

BEFORE = "9e3b5d7f1a24"  # tick_state platforms, the head before instance_events


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return {
            row["tablename"]
            for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    finally:
        await conn.close()


async def test_instance_events_up_and_down(databases: DatabaseFactory) -> None:
    url = await databases.create("pool_events_migration")
    await upgrade_async("pool", url)
    assert "instance_events" in await _tables(url)
    await asyncio.to_thread(command.downgrade, alembic_config("pool", url), BEFORE)
    assert "instance_events" not in await _tables(url)
    await upgrade_async("pool", url)
    assert "instance_events" in await _tables(url)
