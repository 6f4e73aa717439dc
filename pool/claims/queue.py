"""Queueing a claim and waiting for its answer (DESIGN.md §10); `pool.claims.queue_db` holds the SQL.

A claim is queued with its body (whichever replica assigns it an instance provisions it from
that), a deadline, its priority and the ETA it was given. `wait_for_answer` is the wait of
`POST /api/pool/claim?wait=N`: on the claim's event in this replica (set by whoever moves it here,
or by the dispatcher's poll of the followed claims), re-reading the record at least every
`FALLBACK_POLL_SECONDS`. At its deadline it times the claim out, conditionally on it still being
queued; one assigned at the last moment is waited for through its provision (bounded).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

from pool.claims import queue_db
from pool.claims.eta import REFILL_SAMPLES, REFILL_WINDOW_SECONDS, Supply, eta_seconds
from pool.claims.repository import recorded_kind
from pool.claims.schemas import Claim, ClaimCreate
from pool.claims.statements import DEFAULT_TEMPLATE
from pool.deps import PoolState
from shared.errors import AppError, Conflict, Unavailable, UpstreamError
from shared.logging import get_logger

log = get_logger("pool.claims.queue")

EMPTY_RETRY_AFTER = 5
FALLBACK_POLL_SECONDS = 1.0
# A claim the queue assigned whose provision fails goes back to its place this many times.
REQUEUES = 1


@dataclass(frozen=True)
class Queued:
    claim_id: str
    position: int
    eta_seconds: float | None


async def supply(
    pool: PoolState, *, template: str = DEFAULT_TEMPLATE, priority: int = 0
) -> tuple[int, Supply]:
    settings = pool["settings"]
    return await queue_db.supply(
        pool["claims_db"],
        template=template,
        priority=priority,
        window_seconds=REFILL_WINDOW_SECONDS,
        samples=REFILL_SAMPLES,
        max_total=settings.max_total,
        concurrency=settings.create_concurrency,
    )


async def enqueue(
    pool: PoolState,
    body: ClaimCreate,
    *,
    claim_id: str,
    caller: str,
    key: str | None,
    digest: str,
    timeout_seconds: int,
    template: str = DEFAULT_TEMPLATE,
    priority: int = 0,
) -> Queued | None:
    """Queue the claim in its template's queue (None: its Idempotency-Key or joinUrl already has a
    claim) and dispatch."""
    ahead, measured = await supply(pool, template=template, priority=priority)
    position = ahead + 1
    eta = eta_seconds(position, measured)
    queued = await queue_db.enqueue(
        pool["claims_db"],
        claim_id=claim_id,
        caller=caller,
        key=key,
        digest=digest,
        join_url=body.join_url,
        template=template,
        priority=priority,
        request=body.model_dump(mode="json"),
        timeout_seconds=timeout_seconds,
        eta_seconds=eta,
    )
    if not queued:
        return None
    log.info("claim.queue.queued", claim_id=claim_id, position=position, eta_s=eta, priority=priority)
    pool["queue"].follow(claim_id)
    # A queued claim is demand: the tick creates for it (pool.tick.plan.replenish_counts).
    pool["tick"].wake()
    return Queued(claim_id=claim_id, position=position, eta_seconds=eta)


def outcome_error(response: dict[str, Any]) -> AppError:
    """The error a recorded failure replays as."""
    detail = str(response.get("detail", "the claim failed"))
    kind = recorded_kind(response)
    if kind == "Unavailable":
        return Unavailable(detail, retry_after=EMPTY_RETRY_AFTER)
    if kind == "Cancelled":
        return Conflict(detail)
    return UpstreamError(detail)


async def wait_for_record(
    pool: PoolState, claim_id: str, caller: str, until: float
) -> queue_db.Record | None:
    """The claim's record once it has ended, or as it is at `until` (monotonic)."""
    with pool["queue"].waiting(claim_id) as moved:
        while True:
            moved.clear()
            found = await queue_db.record(pool["claims_db"], claim_id=claim_id, caller=caller)
            remaining = until - time.monotonic()
            if found is None or found.status in queue_db.ENDED or remaining <= 0:
                return found
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), min(remaining, FALLBACK_POLL_SECONDS))


async def time_out(pool: PoolState, claim_id: str) -> bool:
    """End a queued claim at its deadline; False when it had left the queue."""
    waited = await queue_db.expire(pool["claims_db"], claim_id)
    if waited is None:
        return False
    log.info("claim.queue.timed_out", claim_id=claim_id, waited_s=round(waited, 1))
    pool["metrics"].record_queue_exit("timed_out", waited, None)
    pool["queue"].ended(claim_id)
    return True


async def wait_for_answer(pool: PoolState, claim_id: str, caller: str, wait_seconds: int) -> Claim:
    """The queued claim's answer within `wait_seconds`, else 503 (the claim ends, timed out)."""
    found = await wait_for_record(pool, claim_id, caller, time.monotonic() + wait_seconds)
    if found is not None and found.status == queue_db.IN_QUEUE and await time_out(pool, claim_id):
        raise Unavailable(
            f"no instance became free within {wait_seconds} s in the queue; retry later",
            retry_after=EMPTY_RETRY_AFTER,
        )
    if found is not None and found.status not in queue_db.ENDED:
        # Assigned at the last moment: its provision is bounded by the claim's worst case.
        bound = time.monotonic() + pool["settings"].claim_stale_seconds
        found = await wait_for_record(pool, claim_id, caller, bound)
    return answer(found)


def answer(found: queue_db.Record | None) -> Claim:
    if found is None:
        raise Conflict("the claim's record is gone; retry")
    if found.status == "succeeded" and found.response is not None:
        return Claim.model_validate(found.response)
    if found.status in ("failed", "cancelled") and found.response is not None:
        raise outcome_error(found.response)
    raise Conflict("the claim is still in progress; retry with its Idempotency-Key")
