from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.instance_client import InstanceClient
from pool.metrics import PoolMetrics
from pool.services_client import ServicesClient
from pool.tick.settings import TickSettings
from shared.auth import SecretBox


@dataclass
class TickContext:
    """Everything the loop, the prober and `create_instances` touch, built once in lifespan."""

    sessionmaker: async_sessionmaker[AsyncSession]
    services: ServicesClient
    # Every call to an instance: /pool/health, /convos/status (pool.tick.probes).
    instances: InstanceClient
    box: SecretBox
    settings: TickSettings
    metrics: PoolMetrics | None = None
    # Creates run in the background so a slow platform never stalls a tick's observations.
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    create_slots: asyncio.Semaphore | None = None
    # Idle instance id → when the tick last asked its /convos/status (`pool.tick.runtimes`).
    runtime_checked: dict[str, float] = field(default_factory=dict)

    def slots(self) -> asyncio.Semaphore:
        if self.create_slots is None:
            self.create_slots = asyncio.Semaphore(self.settings.create_concurrency)
        return self.create_slots

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    async def settle(self) -> None:
        """Wait for background creates (tests, shutdown)."""
        while self.background:
            await asyncio.gather(*list(self.background), return_exceptions=True)
