"""The templates migration goes up with the `default` template (version 1: the deployment's
settings), leaves instances as they were, and goes back down cleanly."""

from __future__ import annotations

import asyncio

import asyncpg

from alembic import command
from shared.db import libpq_url
from shared.migrations import alembic_config, upgrade_async
from tests.pool.test_migration_instance_events import _tables
from tests.support import DatabaseFactory

BEFORE = "6e1f0c2b7a16"  # instance events, the head before templates


async def _fetch(url: str, *queries: str) -> list[dict[str, object]]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return [dict(row) for query in queries for row in await conn.fetch(query)]
    finally:
        await conn.close()


async def test_templates_up_with_the_default_template_and_down(databases: DatabaseFactory) -> None:
    url = await databases.create("pool_templates_migration")
    await upgrade_async("pool", url, BEFORE)
    await _fetch(
        url, "INSERT INTO instances (id, name, status) VALUES ('abcdefabcdef', 'n', 'idle') RETURNING id"
    )

    await upgrade_async("pool", url, "3a8c6e1d9f52")

    assert {"templates", "template_versions"} <= await _tables(url)
    rows = await _fetch(
        url,
        "SELECT id, slug, owner, visibility, current_version, archived_at FROM templates",
        "SELECT template_id, version, image, tools, env, min_idle, rollout_strategy FROM template_versions",
        # Instances stay as they were: the claim path still writes instances.template_id.
        "SELECT status, template_id FROM instances",
    )
    assert rows == [
        {
            "id": "default",
            "slug": "default",
            "owner": "operator",
            "visibility": "public",
            "current_version": 1,
            "archived_at": None,
        },
        {
            "template_id": "default",
            "version": 1,
            "image": None,
            "tools": None,
            "env": "{}",
            "min_idle": None,
            "rollout_strategy": "on-replenish",
        },
        {"status": "idle", "template_id": None},
    ]

    await asyncio.to_thread(command.downgrade, alembic_config("pool", url), BEFORE)
    assert not {"templates", "template_versions"} & await _tables(url)
    assert await _fetch(url, "SELECT id FROM instances") == [{"id": "abcdefabcdef"}]
    await upgrade_async("pool", url)
    assert {"templates", "template_versions"} <= await _tables(url)
    await databases.drop(url)
