"""Tick fixtures: the real services app (local provider, real runtime processes) served over
HTTP, and pool tick contexts/runners on the test's pool database."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import select

from pool.config import Settings as PoolSettings
from pool.deps import PoolState
from pool.main import build_state
from pool.models import Instance
from pool.tick.context import TickContext
from pool.tick.loop import TickRunner
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.support import free_port, serve

SERVICES_KEY = "test-services-key"


@dataclass
class Services:
    url: str
    port: int
    data_dir: Path
    settings: ServicesSettings

    def pid_of(self, instance_id: str) -> int:
        return int(json.loads((self.data_dir / instance_id / "process.json").read_text())["pid"])

    def kill(self, instance_id: str) -> None:
        print(
            "KILL",
            self.pid_of(instance_id),
            os.getpgid(self.pid_of(instance_id)),
            psutil.Process(self.pid_of(instance_id)).cmdline(),
        )
        os.killpg(self.pid_of(instance_id), signal.SIGKILL)


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "instances"
    yield path
    # No runtime process outlives its test.
    for record in path.glob("*/process.json") if path.exists() else []:
        info = json.loads(record.read_text())
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            proc = psutil.Process(info["pid"])
            if abs(proc.create_time() - info["create_time"]) < 0.05:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def services_settings(services_db_url: str, data_dir: Path) -> ServicesSettings:
    return ServicesSettings(
        environment="test",
        database_url=services_db_url,
        api_key=SERVICES_KEY,
        encryption_key="test-encryption-key",
        local_data_dir=str(data_dir),
        probe_timeout_seconds=1.0,
        local_stop_grace_seconds=3.0,
    )


@pytest.fixture
async def services(services_settings: ServicesSettings, data_dir: Path) -> AsyncIterator[Services]:
    port = free_port()
    async with serve(create_services_app(services_settings), port=port) as url:
        yield Services(url, port, data_dir, services_settings)


@contextlib.asynccontextmanager
async def pool_state(settings: PoolSettings) -> AsyncIterator[PoolState]:
    state = build_state(settings, engine_pool_size=5)
    try:
        yield state
    finally:
        await state["tick"].stop()
        await state["services"].aclose()
        await state["instances"].aclose()
        await state["engine"].dispose()


def pool_settings(pool_db_url: str, services_url: str, **overrides: Any) -> PoolSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": pool_db_url,
        "services_url": services_url,
        "services_api_key": SERVICES_KEY,
        "encryption_key": "test-pool-encryption",
        "min_idle": 2,
        "max_total": 6,
        "tick_interval_seconds": 0.5,
        "starting_probe_interval_seconds": 0.2,
        "failed_probes_for_death": 2,
        # Short enough for tests that wait on a dead instance or on a backoff to end.
        "probe_timeout_seconds": 1.0,
        "create_backoff_base_seconds": 0.2,
    }
    values.update(overrides)
    return PoolSettings(**values)


@contextlib.asynccontextmanager
async def pool_runner(settings: PoolSettings) -> AsyncIterator[TickRunner]:
    """The tick's runner on `settings`, its loops not started (`runner.start()` starts them)."""
    async with pool_state(settings) as state:
        yield state["tick"].runner


@pytest.fixture
def make_runner(pool_db_url: str) -> Callable[..., contextlib.AbstractAsyncContextManager[TickRunner]]:
    def make(services_url: str, **overrides: Any) -> contextlib.AbstractAsyncContextManager[TickRunner]:
        return pool_runner(pool_settings(pool_db_url, services_url, **overrides))

    return make


async def statuses(ctx: TickContext) -> dict[str, str]:
    async with ctx.sessionmaker() as session:
        return {row.id: row.status for row in await session.scalars(select(Instance))}
