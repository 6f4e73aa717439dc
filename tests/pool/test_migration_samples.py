"""The samples migration (the dashboard's pictures) goes up and back down cleanly."""

from __future__ import annotations

import asyncio

from alembic import command
from shared.migrations import alembic_config, upgrade_async
from tests.pool.test_migration_instance_events import _tables
from tests.support import DatabaseFactory

BEFORE = "1c7e4a9b2d60"  # sizing, the head before the samples


async def test_samples_up_and_down(databases: DatabaseFactory) -> None:
    url = await databases.create("pool_samples_migration")
    await upgrade_async("pool", url)
    assert {"template_samples", "claim_samples"} <= await _tables(url)
    await asyncio.to_thread(command.downgrade, alembic_config("pool", url), BEFORE)
    assert not {"template_samples", "claim_samples"} & await _tables(url)
    await upgrade_async("pool", url)
    assert {"template_samples", "claim_samples"} <= await _tables(url)
    await databases.drop(url)
