"""The runner: one reconcile loop, one starting prober, one platform listing (the safety net,
`pool.tick.listing`: looked at every tick interval, run when due) and one refill waker per process.

- Each loop runs its body every N seconds measured from the *start* of the previous run; an
  overrun is logged and the next run starts at once (ticks never overlap: one task, one lock).
- On `Exception` it logs and continues; `CancelledError` propagates; `stop()` is cooperative.
- Only the replica holding the fleet's advisory lock reconciles and probes. `wake()` (after a
  claim) refills on any replica: the reservation itself is race-free (`pool.tick.replenish`).
- `run(loops=1)` / `run_once()` drive it from tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pool.tick import listing, replenish
from pool.tick.context import TickContext
from pool.tick.leader import Leadership
from pool.tick.prober import probe_starting
from pool.tick.reconcile import TickResult, reconcile
from shared.logging import get_logger

log = get_logger("pool.tick.loop")


class TickRunner:
    def __init__(self, ctx: TickContext, *, holder_id: str | None = None) -> None:
        self.ctx = ctx
        self.holder_id = holder_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.leadership = Leadership(ctx.settings.database_url, ctx.fleet)
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()
        self._tick_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def is_leader(self) -> bool:
        return self.leadership.held

    async def run_once(self) -> TickResult | None:
        """One tick if this replica leads (None otherwise); never two at once in one process."""
        async with self._tick_lock:
            if not await self.leadership.acquire():
                return None
            return await reconcile(self.ctx, leader_id=self.holder_id)

    async def probe_once(self) -> int:
        if not await self.leadership.acquire():
            return 0
        return await probe_starting(self.ctx)

    async def list_once(self) -> set[str] | None:
        """The safety-net listing, if this replica leads and one is due."""
        if not await self.leadership.acquire():
            return None
        return await listing.list_if_due(self.ctx)

    async def refill_once(self) -> list[str]:
        return await replenish.refill(self.ctx)

    async def run(self, loops: int | None = None) -> None:
        await self._every(self.ctx.settings.tick_interval_seconds, self.run_once, "tick", loops)

    def start(self) -> None:
        settings = self.ctx.settings
        self._stopping.clear()
        self._tasks = [
            asyncio.create_task(self.run(), name="pool.tick"),
            asyncio.create_task(
                self._every(settings.starting_probe_interval_seconds, self.probe_once, "prober", None),
                name="pool.tick.prober",
            ),
            asyncio.create_task(
                self._every(settings.tick_interval_seconds, self.list_once, "listing", None),
                name="pool.tick.listing",
            ),
            asyncio.create_task(self._refill_on_wake(), name="pool.tick.refill"),
        ]

    def wake(self) -> None:
        """Ask for a refill soon, without waiting for it (called after each claim)."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ctx.settle(), timeout=timeout)
        await self.leadership.release()

    async def _every(
        self, interval: float, body: Callable[[], Awaitable[Any]], name: str, loops: int | None
    ) -> None:
        done = 0
        while not self._stopping.is_set() and (loops is None or done < loops):
            started = time.monotonic()
            try:
                await body()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(f"{name}.failed")
            done += 1
            if loops is not None and done >= loops:
                break
            elapsed = time.monotonic() - started
            if elapsed > interval:
                log.warning(f"{name}.overrun", seconds=round(elapsed, 3), interval=interval)
                continue
            await self._sleep(interval - elapsed)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def _refill_on_wake(self) -> None:
        while not self._stopping.is_set():
            await self._wake.wait()
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                await self.refill_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("refill.failed")
