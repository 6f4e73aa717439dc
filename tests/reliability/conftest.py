"""Reliability fixtures: pool settings on the test's database, the pool's fake fleet and fake
services (reused from tests/pool), and a session factory of the test's own.

Tests marked `slow` here run only when asked for (`make soak`, or `-m slow`): `make test` runs
pytest with no marker expression, and the deep fuzzing and soak runs take minutes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from tests.pool.conftest import fake_services, fleet, make_settings, sessionmaker

__all__ = ["fake_services", "fleet", "make_settings", "sessionmaker"]

HERE = "tests/reliability"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with `make soak` (pytest -m slow)")
    for item in items:
        if HERE in item.nodeid and item.get_closest_marker("slow") is not None:
            item.add_marker(skip)


@pytest.fixture
def pool_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    """The pool's test settings (tests/pool/conftest.py), under the name these tests use."""
    return make_settings


@pytest.fixture
def pool_sessions(sessionmaker: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    return sessionmaker
