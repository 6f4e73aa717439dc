"""Session-wide PostgreSQL (embedded, or TEST_DATABASE_URL) with both apps' schemas migrated by
Alembic into template databases; each test that asks gets its own clone."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from devtools.pg import EmbeddedPostgres
from shared.migrations import upgrade_async
from tests.support import DatabaseFactory


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    # Not under pytest's basetemp: pytest prunes old basetemps, which would pull the data dir
    # out from under a cluster that a concurrent test run still uses.
    data_dir = Path(tempfile.mkdtemp(prefix="warmpool-test-pg-"))
    server = EmbeddedPostgres(data_dir).start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
async def databases(postgres_admin_url: str) -> AsyncIterator[DatabaseFactory]:
    factory = DatabaseFactory(postgres_admin_url)
    try:
        yield factory
    finally:
        await factory.drop_all()


@pytest.fixture(scope="session")
async def services_template_url(databases: DatabaseFactory) -> str:
    url = await databases.create("services_tpl")
    await upgrade_async("services", url)
    return url


@pytest.fixture(scope="session")
async def pool_template_url(databases: DatabaseFactory) -> str:
    url = await databases.create("pool_tpl")
    await upgrade_async("pool", url)
    return url


@pytest.fixture
async def services_db_url(databases: DatabaseFactory, services_template_url: str) -> AsyncIterator[str]:
    url = await databases.clone(services_template_url, "services")
    yield url
    await databases.drop(url)


@pytest.fixture
async def pool_db_url(databases: DatabaseFactory, pool_template_url: str) -> AsyncIterator[str]:
    url = await databases.clone(pool_template_url, "pool")
    yield url
    await databases.drop(url)
