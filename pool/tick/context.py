from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.instance_client import InstanceClient
from pool.metrics import PoolMetrics
from pool.services_client import ServicesClient
from pool.status import Rules
from pool.tick.state import FLEET
from pool.tick.targets import PoolTarget, Target
from shared.auth import SecretBox


@dataclass
class ListingState:
    # `time.monotonic()` of the last listing that answered; None: none yet (the first is due now).
    at: float | None = None
    platform_calls: int = 0
    orphans: int = 0


@dataclass
class TickContext:
    """Everything the loop, the prober and `create_instances` touch, built once in lifespan
    (`pool.tick.tick.Tick`). Settings are the pool's own, read as they are."""

    sessionmaker: async_sessionmaker[AsyncSession]
    services: ServicesClient
    # Every call to an instance: /pool/health, /convos/status (pool.tick.probes).
    instances: InstanceClient
    box: SecretBox
    settings: Settings
    metrics: PoolMetrics | None = None
    # The tick_state row, the leader lock and the reservation lock are per fleet; one per database today.
    fleet: str = FLEET
    rules: Rules = field(init=False)
    # Creates run in the background so a slow platform never stalls a tick's observations.
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    create_slots: asyncio.Semaphore | None = None
    # Instances the next tick observes first, platform included (`pool.tick.selection`): marked
    # by a deploy event or by the safety-net listing (`pool.tick.listing`) through `observe_soon`.
    observe_now: set[str] = field(default_factory=set)
    # The last safety-net listing: when (monotonic), what it cost, the orphans it saw.
    listing: ListingState = field(default_factory=lambda: ListingState())
    # Called when an instance may have become idle (promoted, recovered): the claim queue's
    # dispatcher hands it to the queue's head (`pool.claims.dispatcher`, wired in `pool.main`).
    on_idle: Callable[[], None] = field(default=lambda: None)

    def __post_init__(self) -> None:
        s = self.settings
        self.rules = Rules(
            stuck_timeout_seconds=s.stuck_timeout_seconds, death_threshold=s.failed_probes_for_death
        )

    def target(self, pools: tuple[PoolTarget, ...] = (), *, may_create: bool = True) -> Target:
        """What the plan aims at: the live templates' pools (`pool.tick.pools`); `may_create` is
        False while failed creates back off."""
        s = self.settings
        return Target(
            pools=pools,
            max_total=s.max_total,
            rules=self.rules,
            orphan_grace_seconds=s.orphan_grace_seconds,
            # The create call with every retry (shared.http.HTTP_RETRY: 3 attempts) and their
            # pauses, twice over: a `creating` row services still has not heard of by then never
            # reached it. At least the stuck timeout, which bounded such rows before.
            create_lost_seconds=max(s.stuck_timeout_seconds, 2 * 3 * (s.services_timeout_seconds + 30)),
            create_resend_seconds=s.services_timeout_seconds,
            may_create=may_create,
        )

    def observe_soon(self, instance_ids: Iterable[str]) -> None:
        """Have the next tick observe these instances (health and platform), whatever their
        place on the rotation: the hook for deploy events and for the listing's findings."""
        self.observe_now.update(instance_ids)

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
