"""What the claim path records without waiting for it: the claims' event-log entries and each
minute's claim outcomes and latencies.

A claim's answer never waits on these writes: `event` and `claim` only append to memory, and one
background task per replica writes what gathered every `flush_seconds` in one transaction (one
multi-row INSERT, one upsert per minute). So the hot path gains no round trip; the price is that a
replica killed between flushes loses at most that many seconds of entries and counts (a log, not a
ledger: the claim itself is recorded by its own transaction). The buffer is bounded: past
`MAX_PENDING` entries the oldest go, counted in a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.activity import latency
from pool.activity.log import entry
from pool.models import InstanceEvent
from shared.logging import get_logger

log = get_logger("pool.activity")

MAX_PENDING = 10_000
# Outcomes as pool.metrics.PoolMetrics.record_claim names them: a hit was answered from an idle
# instance at once; a miss found none (it queued, or was refused empty).
HITS = frozenset({"claimed"})
MISSES = frozenset({"queued", "empty"})
# Latencies of claims that got an agent: a refusal's few milliseconds are not a claim's wait.
TIMED = frozenset({"claimed", "queued"})

ADD_MINUTE = text(
    """
    INSERT INTO claim_samples (minute, hits, misses, other, latency_buckets)
    VALUES (:minute, :hits, :misses, :other, :buckets)
    ON CONFLICT (minute) DO UPDATE SET
        hits = claim_samples.hits + EXCLUDED.hits,
        misses = claim_samples.misses + EXCLUDED.misses,
        other = claim_samples.other + EXCLUDED.other,
        latency_buckets = ARRAY(
            SELECT coalesce(a, 0) + coalesce(b, 0)
              FROM unnest(claim_samples.latency_buckets, EXCLUDED.latency_buckets)
                   WITH ORDINALITY AS t(a, b, i)
             ORDER BY i
        )
    """
)


class _Minute:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.other = 0
        self.buckets = [0] * latency.SIZE


class Recorder:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, flush_seconds: float = 1.0) -> None:
        self._sessionmaker = sessionmaker
        self._flush_seconds = flush_seconds
        self._events: deque[dict[str, Any]] = deque()
        self._minutes: dict[datetime, _Minute] = {}
        self._dropped = 0
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def event(self, instance_id: str, kind: str, *, actor: str, **summary: Any) -> None:
        if len(self._events) >= MAX_PENDING:
            self._events.popleft()
            self._dropped += 1
        # Stamped now, not at the flush: the log orders it where it happened (this replica's clock).
        self._events.append({**entry(instance_id, kind, actor, summary), "at": datetime.now(UTC)})

    def claim(self, outcome: str, seconds: float | None) -> None:
        """One claim answered (or queued, `seconds` None: its wait is not known yet)."""
        minute = datetime.now(UTC).replace(second=0, microsecond=0)
        counts = self._minutes.setdefault(minute, _Minute())
        if outcome in HITS:
            counts.hits += 1
        elif outcome in MISSES:
            counts.misses += 1
        else:
            counts.other += 1
        if outcome in TIMED and seconds is not None:
            counts.buckets[latency.bucket(seconds)] += 1

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pool.activity.recorder")

    async def stop(self) -> None:
        """Stop the task and write what is left (one attempt: the database may be gone too)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._flush_logged()

    async def flush(self) -> None:
        async with self._lock:
            events, self._events = list(self._events), deque()
            minutes, self._minutes = self._minutes, {}
            if self._dropped:
                log.warning("activity.events_dropped", count=self._dropped)
                self._dropped = 0
            if not events and not minutes:
                return
            try:
                async with self._sessionmaker.begin() as session:
                    if events:
                        # Rows as parameters (executemany), not `.values(events)`: a multi-row VALUES
                        # is compiled anew for every count of rows, ~85 µs of CPU per row against
                        # ~11 µs (bench/findings.md), on the claim path's replica.
                        await session.execute(insert(InstanceEvent), events)
                    for minute, c in sorted(minutes.items()):
                        values = {"hits": c.hits, "misses": c.misses, "other": c.other, "buckets": c.buckets}
                        await session.execute(ADD_MINUTE, {"minute": minute, **values})
            except Exception:
                # Kept for the next flush, within the bound.
                room = max(0, MAX_PENDING - len(self._events))
                self._events.extendleft(reversed(events[len(events) - room :] if room else []))
                for minute, c in minutes.items():
                    self._merge_back(minute, c)
                raise

    def _merge_back(self, minute: datetime, counts: _Minute) -> None:
        kept = self._minutes.setdefault(minute, _Minute())
        kept.hits += counts.hits
        kept.misses += counts.misses
        kept.other += counts.other
        kept.buckets = [a + b for a, b in zip(kept.buckets, counts.buckets, strict=True)]

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - the next flush tries again
            log.warning("activity.flush_failed", error=f"{type(exc).__name__}: {exc}"[:300])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_seconds)
            await self._flush_logged()
