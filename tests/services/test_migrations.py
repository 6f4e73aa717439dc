"""Services' data migrations carry existing rows across and back: deploy words become neutral
deploy states, the platform id columns become the opaque `platform_ref` JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from alembic import command
from shared.db import libpq_url
from shared.migrations import alembic_config, upgrade_async
from tests.support import DatabaseFactory

BEFORE = "a62e4f26a198"  # the last revision with the Railway-shaped columns and words

RAILWAY = "rrrrrrrrrrr1"
LOCAL = "llllllllll01"
BARE = "bbbbbbbbbbb1"
ODD = "ooooooooooo1"
ROWS: list[tuple[Any, ...]] = [
    # instance_id, provider, project, environment, service, volume, domain, provider_meta, deploy
    (
        RAILWAY,
        "railway",
        "p1",
        "e1",
        "s1",
        "v1",
        "a.up.example",
        {"mode": "per-instance", "domain_id": "d1"},
        "SUCCESS",
    ),
    (LOCAL, "local", None, None, LOCAL, None, None, {"data_dir": "/x/l1", "port": 5, "pid": 7}, "CRASHED"),
    (BARE, "railway", None, None, None, None, None, {}, None),
    (ODD, "railway", "p2", "e2", "s2", None, None, {}, "SOMETHING_NEW"),
]
COLUMNS = "provider_project_id, provider_env_id, provider_service_id, volume_id, domain, provider_meta"


@pytest.fixture
async def old_db(databases: DatabaseFactory) -> AsyncIterator[str]:
    url = await databases.create("migrations")
    await upgrade_async("services", url, BEFORE)
    conn = await asyncpg.connect(libpq_url(url))
    try:
        for instance_id, provider, *ids, meta, deploy in ROWS:
            await conn.execute(
                f"INSERT INTO instance_infra (instance_id, name, provider, {COLUMNS}, deploy_status) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10)",
                instance_id,
                instance_id,
                provider,
                *ids,
                json.dumps(meta),
                deploy,
            )
    finally:
        await conn.close()
    yield url
    await databases.drop(url)


async def _fetch(url: str, columns: str) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(libpq_url(url))
    try:
        rows = await conn.fetch(f"SELECT instance_id, {columns} FROM instance_infra")
    finally:
        await conn.close()
    return {row["instance_id"]: dict(row) for row in rows}


async def test_platform_columns_move_into_platform_ref_and_back(old_db: str) -> None:
    await upgrade_async("services", old_db)

    new = await _fetch(old_db, "platform_ref, deploy_status")
    assert {key: json.loads(row["platform_ref"]) for key, row in new.items()} == {
        RAILWAY: {
            "mode": "per-instance",
            "domain_id": "d1",
            "project_id": "p1",
            "environment_id": "e1",
            "service_id": "s1",
            "volume_id": "v1",
            "domain": "a.up.example",
        },
        LOCAL: {"data_dir": "/x/l1", "port": 5, "pid": 7, "service_id": LOCAL},
        BARE: {},
        ODD: {"project_id": "p2", "environment_id": "e2", "service_id": "s2"},
    }
    assert {key: row["deploy_status"] for key, row in new.items()} == {
        RAILWAY: "running",
        LOCAL: "crashed",
        BARE: None,
        ODD: "unknown",
    }

    await asyncio.to_thread(command.downgrade, alembic_config("services", old_db), BEFORE)

    old = await _fetch(old_db, f"{COLUMNS}, deploy_status")
    for instance_id, _, *ids, meta, deploy in ROWS:
        row = old[instance_id]
        restored = [row[c.strip()] for c in COLUMNS.split(",")][:-1]
        assert restored == ids, instance_id
        assert json.loads(row["provider_meta"]) == meta, instance_id
        # Each neutral state has one representative word; `unknown` has none.
        assert row["deploy_status"] == (None if deploy == "SOMETHING_NEW" else deploy), instance_id


async def test_a_local_row_made_after_the_upgrade_gets_its_service_id_back_on_downgrade(
    databases: DatabaseFactory,
) -> None:
    url = await databases.create("migrations_local")
    await upgrade_async("services", url)
    conn = await asyncpg.connect(libpq_url(url))
    try:
        await conn.execute(
            "INSERT INTO instance_infra (instance_id, name, provider, platform_ref) "
            "VALUES ($1, $2, 'local', $3::jsonb)",
            LOCAL,
            LOCAL,
            json.dumps({"data_dir": "/x/l1", "port": 5}),
        )
    finally:
        await conn.close()

    await asyncio.to_thread(command.downgrade, alembic_config("services", url), BEFORE)

    row = (await _fetch(url, COLUMNS))[LOCAL]
    assert (row["provider_service_id"], json.loads(row["provider_meta"])) == (
        LOCAL,
        {"data_dir": "/x/l1", "port": 5},
    )
    await databases.drop(url)


async def test_rows_get_their_platform_from_their_provider_and_an_unplaced_create_survives_downgrade(
    databases: DatabaseFactory,
) -> None:
    before_placement = "c4a9e2f17b36"
    url = await databases.create("migrations_placement")
    await upgrade_async("services", url, before_placement)
    conn = await asyncpg.connect(libpq_url(url))
    try:
        for instance_id, provider in ((RAILWAY, "railway"), (LOCAL, "local")):
            await conn.execute(
                "INSERT INTO instance_infra (instance_id, name, provider, state) "
                "VALUES ($1::text, $1::text, $2, 'active')",
                instance_id,
                provider,
            )
        await asyncio.to_thread(command.upgrade, alembic_config("services", url), "head")
        placed = await conn.fetch("SELECT instance_id, platform, provider FROM instance_infra")
        assert {r["instance_id"]: (r["platform"], r["provider"]) for r in placed} == {
            RAILWAY: ("railway", "railway"),
            LOCAL: ("local", "local"),
        }
        # A create a worker has not placed yet records neither.
        await conn.execute(
            "INSERT INTO instance_infra (instance_id, name, state) VALUES ($1::text, $1::text, 'creating')",
            BARE,
        )
        await conn.execute("INSERT INTO platform_health (name, consecutive_failures) VALUES ('railway', 2)")

        await asyncio.to_thread(command.downgrade, alembic_config("services", url), before_placement)

        kept = await conn.fetch("SELECT instance_id, provider FROM instance_infra")
        assert {r["instance_id"]: r["provider"] for r in kept} == {
            RAILWAY: "railway",
            LOCAL: "local",
            BARE: "",
        }
        assert await conn.fetchval("SELECT to_regclass('platform_health')") is None
    finally:
        await conn.close()
    await databases.drop(url)
