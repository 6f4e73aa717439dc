"""Reliability fixtures: pool settings on the test's database, the pool's fake fleet and fake
services (reused from tests/pool), and a session factory of the test's own.

Tests marked `slow` here run only when asked for (`make soak`, or `-m slow`): `make test` runs
pytest with no marker expression, and the deep fuzzing and soak runs take minutes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from shared.db import make_engine, make_sessionmaker
from tests.pool.conftest import API_KEY, fake_services, fleet
from tests.pool.factories import ENCRYPTION_KEY

__all__ = ["fake_services", "fleet"]

HERE = "tests/reliability"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with `make soak` (pytest -m slow)")
    for item in items:
        if HERE in item.nodeid and item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture
def pool_settings(pool_db_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": pool_db_url,
            "api_key": API_KEY,
            "services_api_key": "test-services-key",
            "encryption_key": ENCRYPTION_KEY,
            "tick_enabled": False,
            "claim_provision_timeout_seconds": 5.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def pool_sessions(pool_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pool_db_url, pool_size=2)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()
