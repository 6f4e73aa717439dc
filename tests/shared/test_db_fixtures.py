import asyncpg

from tests.support import DatabaseFactory


async def test_services_clone_has_migrated_tables(services_db_url: str) -> None:
    conn = await asyncpg.connect(services_db_url)
    try:
        tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
    finally:
        await conn.close()
    assert {"instance_infra", "instance_services", "alembic_version"} <= tables


async def test_each_test_gets_its_own_database(
    databases: DatabaseFactory, services_template_url: str
) -> None:
    first = await databases.clone(services_template_url, "a")
    second = await databases.clone(services_template_url, "b")
    conn = await asyncpg.connect(first)
    try:
        await conn.execute(
            "INSERT INTO instance_infra (instance_id, name, provider) VALUES ('a', 'a', 'local')"
        )
    finally:
        await conn.close()
    conn = await asyncpg.connect(second)
    try:
        assert await conn.fetchval("SELECT count(*) FROM instance_infra") == 0
    finally:
        await conn.close()
