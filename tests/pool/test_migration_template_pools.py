"""The template-pools migration binds every existing instance to the `default` template,
version 1 (a caller's old free-form `templateId` label kept in its metadata), and goes back down
to the labels it found."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from alembic import command
from shared.db import libpq_url
from shared.migrations import alembic_config, upgrade_async
from tests.support import DatabaseFactory

BEFORE = "3a8c6e1d9f52"  # templates, stored but not yet used


async def _fetch(url: str, *queries: str) -> list[dict[str, object]]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        return [dict(row) for query in queries for row in await conn.fetch(query)]
    finally:
        await conn.close()


async def test_instances_join_the_default_template_and_come_back(databases: DatabaseFactory) -> None:
    url = await databases.create("pool_template_pools_migration")
    await upgrade_async("pool", url, BEFORE)
    await _fetch(
        url,
        "INSERT INTO instances (id, name, status, template_id, metadata) VALUES "
        "('aaaaaaaaaaaa', 'a', 'idle', NULL, NULL), "
        """('bbbbbbbbbbbb', 'b', 'claimed', 'support-bot', '{"k": "v"}') RETURNING id""",
    )

    await upgrade_async("pool", url)

    rows = await _fetch(url, "SELECT id, template_id, template_version, metadata FROM instances ORDER BY id")
    assert [(r["id"], r["template_id"], r["template_version"]) for r in rows] == [
        ("aaaaaaaaaaaa", "default", 1),
        ("bbbbbbbbbbbb", "default", 1),
    ]
    assert rows[0]["metadata"] is None
    assert json.loads(str(rows[1]["metadata"])) == {"k": "v", "templateLabel": "support-bot"}
    # A row inserted without a template is the default template's, version 1.
    await _fetch(
        url, "INSERT INTO instances (id, name, status) VALUES ('cccccccccccc', 'c', 'creating') RETURNING id"
    )
    assert await _fetch(
        url, "SELECT template_id, template_version FROM instances WHERE id = 'cccccccccccc'"
    ) == [{"template_id": "default", "template_version": 1}]

    await asyncio.to_thread(command.downgrade, alembic_config("pool", url), BEFORE)
    rows = await _fetch(url, "SELECT id, template_id, metadata FROM instances ORDER BY id")
    assert [(r["id"], r["template_id"]) for r in rows] == [
        ("aaaaaaaaaaaa", None),
        ("bbbbbbbbbbbb", "support-bot"),
        ("cccccccccccc", None),
    ]
    assert json.loads(str(rows[1]["metadata"])) == {"k": "v"}
    await upgrade_async("pool", url)
    await databases.drop(url)
