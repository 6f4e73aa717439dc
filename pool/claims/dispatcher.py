"""The per-replica side of the claim queue: who dispatches when, and who learns an outcome.

Dispatch (`queue_db.dispatch`, atomic under the queue's advisory lock) runs:
- when kicked: a claim was queued here, or an instance may have become idle (the tick's and the
  prober's promotions, a recovery back to idle: `TickContext.on_idle`), or a claim was put back;
- every `DISPATCH_POLL_SECONDS` while this replica follows a queued claim (one it queued or one a
  request here waits on), and every `IDLE_POLL_SECONDS` otherwise if any claim is queued at all,
  so no claim's progress depends on the replica that queued it, or on any one replica.
The replica that dispatched provisions the pairs it assigned, in background tasks.

Outcomes: a request waiting on a claim waits on an `asyncio.Event`, set at once by whoever ends
the claim in this replica, and otherwise by this loop's poll of the followed claims' statuses
(every `WATCH_POLL_SECONDS`: one statement for all of them), which covers other replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pool.claims import queue_db
from pool.claims.db import ClaimsDb
from pool.metrics import PoolMetrics
from shared.logging import get_logger

log = get_logger("pool.claims.queue")

WATCH_POLL_SECONDS = 0.25
DISPATCH_POLL_SECONDS = 0.5
IDLE_POLL_SECONDS = 2.0
ERROR_PAUSE_SECONDS = 1.0
# Pairs per dispatch statement, and statements per round: a large backlog drains over rounds.
DISPATCH_BATCH = 100
DISPATCH_ROUNDS = 10

Provision = Callable[[queue_db.Assigned], Coroutine[Any, Any, None]]


class Dispatcher:
    def __init__(self, db: ClaimsDb, metrics: PoolMetrics, *, lock_key: int) -> None:
        self._db = db
        self._metrics = metrics
        self._lock_key = lock_key
        self._kicked = asyncio.Event()
        self._waiters: dict[str, set[asyncio.Event]] = {}
        # Claims queued by this replica, followed until they leave the queue.
        self._queued_here: set[str] = set()
        # The statuses the last poll read of the claims waited on here (a change wakes the waiters).
        self._seen: dict[str, str] = {}
        self._provision: Provision | None = None
        self._task: asyncio.Task[None] | None = None
        self._round = asyncio.Lock()
        self.background: set[asyncio.Task[Any]] = set()

    def start(self, provision: Provision) -> None:
        self._provision = provision
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="claim-queue")

    async def stop(self, *, grace_seconds: float) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        # Provisions in flight finish within their own timeouts; one cut short leaves a pending
        # claim the tick's upkeep puts back in the queue.
        if self.background:
            _, late = await asyncio.wait(list(self.background), timeout=grace_seconds)
            for task in late:
                task.cancel()

    def kick(self) -> None:
        self._kicked.set()

    def follow(self, claim_id: str) -> None:
        """Keep dispatching from this replica while this claim (queued here) is queued."""
        self._queued_here.add(claim_id)
        self.kick()

    def ended(self, claim_id: str) -> None:
        """The claim moved (assigned, answered, failed, cancelled): wake whoever waits on it here."""
        for event in self._waiters.get(claim_id, ()):
            event.set()

    @contextlib.contextmanager
    def waiting(self, claim_id: str) -> Any:
        event = asyncio.Event()
        self._waiters.setdefault(claim_id, set()).add(event)
        try:
            yield event
        finally:
            events = self._waiters.get(claim_id)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[claim_id]

    async def dispatch(self) -> int:
        """Pair queued claims with idle instances now; returns how many were assigned."""
        async with self._round:
            count = 0
            for template in await queue_db.queued_templates(self._db):
                count += await self._dispatch(template)
            return count

    async def _dispatch(self, template: str) -> int:
        """Pair one template's queued claims with its idle instances, in rounds."""
        count = 0
        for _ in range(DISPATCH_ROUNDS):
            done = await queue_db.dispatch(
                self._db, template=template, lock_key=self._lock_key, limit=DISPATCH_BATCH
            )
            for claim_id, waited in done.expired:
                log.info("claim.queue.timed_out", claim_id=claim_id, waited_s=round(waited, 1))
                self._metrics.record_queue_exit("timed_out", waited, None)
                self.ended(claim_id)
            for assigned in done.assigned:
                log.info(
                    "claim.queue.assigned",
                    claim_id=assigned.claim_id,
                    instance_id=assigned.instance.id,
                    template=template,
                    waited_s=round(assigned.waited, 1),
                    eta_s=assigned.eta_seconds,
                )
                self._metrics.record_queue_exit("assigned", assigned.waited, assigned.eta_seconds)
                self._spawn(assigned)
                self.ended(assigned.claim_id)
            count += len(done.assigned)
            if len(done.assigned) < DISPATCH_BATCH:
                break
        return count

    def _spawn(self, assigned: queue_db.Assigned) -> None:
        assert self._provision is not None
        task = asyncio.create_task(self._provision(assigned))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _run(self) -> None:
        last_dispatch = 0.0
        while True:
            followed = set(self._waiters) | self._queued_here
            pause = WATCH_POLL_SECONDS if followed else IDLE_POLL_SECONDS
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kicked.wait(), pause)
            kicked = self._kicked.is_set()
            self._kicked.clear()
            try:
                due = kicked or await self._poll(followed, time.monotonic() - last_dispatch)
                if due:
                    last_dispatch = time.monotonic()
                    await self.dispatch()
            except Exception as exc:  # noqa: BLE001 - the loop outlives a lost connection; next round retries
                log.warning("claim.queue.round_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                await asyncio.sleep(ERROR_PAUSE_SECONDS)

    async def _poll(self, followed: set[str], since_dispatch: float) -> bool:
        """Wake the waiters whose claims moved; True when a dispatch is due."""
        if not followed:
            return since_dispatch >= IDLE_POLL_SECONDS and await queue_db.has_queued(self._db)
        found = await queue_db.states(self._db, sorted(followed))
        for claim_id in followed:
            status = found.get(claim_id)
            if status != queue_db.IN_QUEUE:
                self._queued_here.discard(claim_id)
            if status != self._seen.get(claim_id):
                self.ended(claim_id)
        self._seen = {claim_id: status for claim_id, status in found.items() if claim_id in self._waiters}
        still_queued = any(status == queue_db.IN_QUEUE for status in found.values())
        return still_queued and since_dispatch >= DISPATCH_POLL_SECONDS
