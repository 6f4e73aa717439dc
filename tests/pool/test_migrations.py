"""The pool's data migrations carry existing rows across and back: a `released` claim becomes
`succeeded` with its joinUrl let go (it had an answer) or `failed` (it had none), and every
existing claim's caller is the one claim credential's."""

from __future__ import annotations

import asyncio
import json

import asyncpg
import pytest

from alembic import command
from shared.db import libpq_url
from shared.migrations import alembic_config, upgrade_async
from tests.support import DatabaseFactory

BEFORE = "775b13427e6c"  # the last revision with the `released` claim status


async def _execute(url: str, *statements: str) -> list[dict[str, object]]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        for statement in statements[:-1]:
            await conn.execute(statement)
        return [dict(row) for row in await conn.fetch(statements[-1])]
    finally:
        await conn.close()


async def test_released_claims_become_succeeded_or_failed_and_back(databases: DatabaseFactory) -> None:
    url = await databases.create("pool_migrations")
    await upgrade_async("pool", url, BEFORE)
    answer = json.dumps({"instanceId": "i1"})
    await _execute(
        url,
        "INSERT INTO claims (id, idempotency_key, request_hash, join_url, status, response) VALUES "
        f"('answered', 'k1', 'h', 'https://j/1', 'released', '{answer}'), "
        "('abandoned', 'k2', 'h', 'https://j/2', 'released', NULL), "
        f"('live', 'k3', 'h', 'https://j/1', 'succeeded', '{answer}'), "
        "('flying', NULL, 'h', NULL, 'pending', NULL)",
        "SELECT 1",
    )

    await upgrade_async("pool", url)

    rows = await _execute(
        url,
        "SELECT id, caller, status, response, join_released_at IS NOT NULL AS let_go FROM claims ORDER BY id",
    )
    assert [(r["id"], r["caller"], r["status"], r["let_go"]) for r in rows] == [
        ("abandoned", "pool_api_key", "failed", False),
        ("answered", "pool_api_key", "succeeded", True),
        ("flying", "pool_api_key", "pending", False),
        ("live", "pool_api_key", "succeeded", False),
    ]
    assert json.loads(str(rows[0]["response"])) == {
        "error": "UpstreamError",
        "detail": "the claim ended: abandoned mid-provision",
    }

    await asyncio.to_thread(command.downgrade, alembic_config("pool", url), BEFORE)

    rows = await _execute(url, "SELECT id, status, response FROM claims ORDER BY id")
    assert [(r["id"], r["status"], r["response"] is not None) for r in rows] == [
        ("abandoned", "released", False),
        ("answered", "released", True),
        ("flying", "pending", False),
        ("live", "succeeded", True),
    ]
    await databases.drop(url)


QUEUE_BEFORE = "4c7d2a9e1b30"  # the last revision without the claim queue


async def test_the_claim_queue_migration_keeps_claims_and_ends_queued_ones_on_the_way_back(
    databases: DatabaseFactory,
) -> None:
    url = await databases.create("pool_queue_migration")
    await upgrade_async("pool", url, QUEUE_BEFORE)
    await _execute(
        url,
        "INSERT INTO claims (id, caller, idempotency_key, request_hash, join_url, status) VALUES "
        "('old1', 'c', 'k1', 'h', NULL, 'succeeded'), ('old2', 'c', 'k2', 'h', NULL, 'pending')",
        "SELECT 1",
    )

    await upgrade_async("pool", url)

    rows = await _execute(
        url,
        "INSERT INTO claims (id, caller, request_hash, join_url, status, queued_at, deadline_at) VALUES "
        "('new1', 'c', 'h', 'https://j/q', 'queued', now(), now() + interval '1 minute'), "
        "('new2', 'c', 'h', NULL, 'cancelled', now(), now())",
        "SELECT id, status, template, priority, queue_seq FROM claims ORDER BY queue_seq",
    )
    assert [(r["id"], r["status"], r["template"], r["priority"]) for r in rows] == [
        ("old1", "succeeded", "default", 0),
        ("old2", "pending", "default", 0),
        ("new1", "queued", "default", 0),
        ("new2", "cancelled", "default", 0),
    ]
    # A queued claim holds its joinUrl like a pending one.
    conn = await asyncpg.connect(libpq_url(url))
    try:
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO claims (id, caller, request_hash, join_url, status) "
                "VALUES ('dup', 'c', 'h', 'https://j/q', 'pending')"
            )
    finally:
        await conn.close()

    await asyncio.to_thread(command.downgrade, alembic_config("pool", url), QUEUE_BEFORE)

    rows = await _execute(url, "SELECT id, status, response IS NOT NULL AS told FROM claims ORDER BY id")
    assert [(r["id"], r["status"], r["told"]) for r in rows] == [
        ("new1", "failed", True),
        ("new2", "failed", True),
        ("old1", "succeeded", False),
        ("old2", "pending", False),
    ]
    await upgrade_async("pool", url)
    await databases.drop(url)


async def test_the_platforms_view_columns_come_and_go_keeping_the_tick_state_row(
    databases: DatabaseFactory,
) -> None:
    url = await databases.create("migrations_platforms")
    await upgrade_async("pool", url)
    view = [{"name": "railway-shared", "inUse": 3}]
    rows = await _execute(
        url,
        f"INSERT INTO tick_state (fleet, platforms, platforms_observed_at) "
        f"VALUES ('default', '{json.dumps(view)}'::jsonb, now())",
        "SELECT fleet, platforms FROM tick_state",
    )
    assert [(r["fleet"], json.loads(str(r["platforms"]))) for r in rows] == [("default", view)]

    await asyncio.to_thread(command.downgrade, alembic_config("pool", url), "7d3b9a1c5e20")
    columns = await _execute(
        url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'tick_state'"
    )
    assert not {"platforms", "platforms_observed_at"} & {str(c["column_name"]) for c in columns}
    assert await _execute(url, "SELECT fleet FROM tick_state") == [{"fleet": "default"}]
    await upgrade_async("pool", url)
    await databases.drop(url)


async def test_the_runtime_rotation_stamp_column_comes_and_goes_keeping_the_rows(
    databases: DatabaseFactory,
) -> None:
    url = await databases.create("migrations_runtime_checked")
    await upgrade_async("pool", url)
    await _execute(
        url,
        "INSERT INTO instances (id, name, status, runtime_checked_at) "
        "VALUES ('i00000000001', 'a', 'idle', now())",
        "SELECT 1",
    )
    await asyncio.to_thread(command.downgrade, alembic_config("pool", url), "4b7e2c9d1f38")
    columns = await _execute(
        url, "SELECT column_name FROM information_schema.columns WHERE table_name = 'instances'"
    )
    assert "runtime_checked_at" not in {str(c["column_name"]) for c in columns}
    assert await _execute(url, "SELECT id FROM instances") == [{"id": "i00000000001"}]
    await upgrade_async("pool", url)
    assert await _execute(url, "SELECT runtime_checked_at FROM instances") == [{"runtime_checked_at": None}]
    await databases.drop(url)
