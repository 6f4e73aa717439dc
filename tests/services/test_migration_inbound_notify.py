"""The inbound-notify migration (gateway_token_enc, inbound_deliveries) goes up and back down cleanly."""

from __future__ import annotations

import asyncio

import asyncpg

from alembic import command
from shared.db import libpq_url
from shared.migrations import alembic_config, upgrade_async
from tests.support import DatabaseFactory

BEFORE = "5a1c7e9d3f02"  # placement, the head before inbound notify


async def _shape(url: str) -> tuple[set[str], set[str]]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'instance_infra'"
            )
        }
        return tables, columns
    finally:
        await conn.close()


async def test_inbound_notify_up_and_down(databases: DatabaseFactory) -> None:
    url = await databases.create("services_inbound_migration")
    await upgrade_async("services", url)
    tables, columns = await _shape(url)
    assert "inbound_deliveries" in tables and "gateway_token_enc" in columns
    await asyncio.to_thread(command.downgrade, alembic_config("services", url), BEFORE)
    tables, columns = await _shape(url)
    assert "inbound_deliveries" not in tables and "gateway_token_enc" not in columns
    await upgrade_async("services", url)
