"""Observe one instance now because a platform event named it (DESIGN.md §13), debounced.

An event is an unsigned hint, so it only asks for an observation: `reconcile.recheck` (platform
status, health probe, `/convos/status`) whose result runs through the same `decide()` as the tick.
Per instance, in this replica: one observation in flight at a time; hints arriving meanwhile are
folded into one more observation after it. Two observations of one instance start at least
`POOL_EVENT_OBSERVE_SPACING_SECONDS` apart, so a flood of events (forged ones included) cannot
count an instance's failed probes toward death faster than that; the first hint of a quiet
instance is observed at once. At most `POOL_EVENT_OBSERVE_CONCURRENCY` instances are observed
at once; the rest wait their turn (each wait is bounded by the observations ahead of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from shared.logging import get_logger

log = get_logger("pool.tick.observe_soon")

Observe = Callable[[str], Awaitable[dict[str, Any]]]
Accepted = Literal["started", "queued", "coalesced"]


@dataclass
class _Entry:
    task: asyncio.Task[None]
    again: bool = False


class ObserveSoon:
    def __init__(self, observe: Observe, *, spacing_seconds: float, concurrency: int) -> None:
        self._observe = observe
        self._spacing = spacing_seconds
        self._slots = asyncio.Semaphore(concurrency)
        self._entries: dict[str, _Entry] = {}
        self._last_started: dict[str, float] = {}
        # Observations run (started), for tests and the benchmark.
        self.runs = 0

    def ask(self, instance_id: str) -> Accepted:
        """Schedule an observation of `instance_id`; never waits for it."""
        entry = self._entries.get(instance_id)
        if entry is not None:
            if entry.again:
                return "coalesced"
            entry.again = True
            return "queued"
        task = asyncio.get_running_loop().create_task(self._run(instance_id))
        self._entries[instance_id] = _Entry(task)
        return "started"

    async def _run(self, instance_id: str) -> None:
        try:
            while True:
                last = self._last_started.get(instance_id)
                if last is not None:
                    wait = self._spacing - (time.monotonic() - last)
                    if wait > 0:
                        await asyncio.sleep(wait)
                async with self._slots:
                    self._last_started[instance_id] = time.monotonic()
                    self.runs += 1
                    progressed = await self._observe_once(instance_id)
                entry = self._entries[instance_id]
                # A create just recorded as made (creating → starting) is looked at once more: the
                # event that named it may already say the deploy is serving.
                entry.again = entry.again or progressed
                if not entry.again:
                    return
                entry.again = False
        finally:
            self._entries.pop(instance_id, None)
            self._forget_old()

    async def _observe_once(self, instance_id: str) -> bool:
        """Whether the observation recorded a finished create."""
        try:
            result = await self._observe(instance_id)
        except Exception as exc:  # noqa: BLE001 - a hint is best effort: the tick is the safety net
            log.warning("event.observe_failed", instance_id=instance_id, error=f"{type(exc).__name__}"[:100])
            return False
        actions = result.get("actions") or {}
        log.info("event.observed", instance_id=instance_id, actions=actions)
        return bool(actions.get("created"))

    def _forget_old(self) -> None:
        """Spacing only matters for a while: drop start times older than it (bounded memory)."""
        cutoff = time.monotonic() - self._spacing
        for instance_id in [i for i, at in self._last_started.items() if at < cutoff]:
            if instance_id not in self._entries:
                del self._last_started[instance_id]

    async def stop(self) -> None:
        tasks = [entry.task for entry in self._entries.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
