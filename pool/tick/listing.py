"""The platform's safety net: a full listing of every platform, as rarely as the net needs.

Deploy events are the fast path for what the platform changes (a crash, a failed deploy, a
sleep); ticks observe what can have changed and a rotation of the rest without listing the
platform (`pool.tick.selection`). A lost event would then go unseen, so the leader asks services
for one full listing (`StatusBatchRequest(changes_only=True)`: O(pages) platform calls, no
probes) every `POOL_LISTING_INTERVAL_SECONDS`, stretched so that listings spend at most
`POOL_LISTING_CALLS_PER_HOUR` platform calls per hour: the next listing waits
`max(interval, calls the last one cost × 3600 ÷ calls per hour)`. It changes no row itself: what
it finds is marked for the next tick (`TickContext.observe_soon`), which observes it platform
included and runs it through the same rules:

- instances whose deploy status is anything but `running` (crashed, failed, removed, missing,
  asleep, redeploying);
- ids services holds and the pool has no row for (the plan's orphan rule then applies);
- settled rows services does not hold (the plan then finds them unknown to services).

The bound on a missed event: a platform change is observed within `L + D + I` of happening,
where `L` is the stretched interval above, `D` the listing's own duration and `I` the tick
interval, while services and the platforms answer. The first listing of a new leader is due at once.
"""

from __future__ import annotations

import time

from sqlalchemy import select

from pool.models import Instance
from pool.status import IN_FLIGHT
from pool.tick.context import TickContext
from shared.logging import get_logger
from shared.schemas import StatusBatchRequest

log = get_logger("pool.tick.listing")


def interval(calls: int, *, every: float, calls_per_hour: int) -> float:
    """Seconds between two listings: the setting, or longer when a listing costs more calls than
    the hourly allowance spread over that setting."""
    return max(every, calls * 3600.0 / calls_per_hour)


def due(ctx: TickContext, now: float) -> bool:
    last = ctx.listing
    if last.at is None:
        return True
    s = ctx.settings
    wait = interval(
        last.platform_calls, every=s.listing_interval_seconds, calls_per_hour=s.listing_calls_per_hour
    )
    return now - last.at >= wait


async def list_if_due(ctx: TickContext) -> set[str] | None:
    """One listing when due; returns the ids marked for the next tick (None: not due or failed)."""
    if not due(ctx, time.monotonic()):
        return None
    return await list_now(ctx)


async def list_now(ctx: TickContext) -> set[str] | None:
    started = time.monotonic()
    try:
        batch = await ctx.services.status_batch(
            StatusBatchRequest(changes_only=True, probe=False),
            timeout=ctx.settings.status_batch_timeout_seconds,
        )
    except Exception as exc:  # noqa: BLE001 - the next attempt comes at the next tick interval
        log.warning("tick.listing.failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return None
    async with ctx.sessionmaker() as session:
        rows = {r[0]: r[1] for r in await session.execute(select(Instance.id, Instance.status))}
    fleet = set(batch.fleet or [])
    changed = {i for i, seen in batch.instances.items() if seen.platform_ok is not False}
    strangers = fleet - set(rows)
    # services' own records, whatever its platforms answered.
    lost = {i for i, status in rows.items() if i not in fleet and status not in IN_FLIGHT}
    marked = changed | strangers | lost
    ctx.observe_soon(marked)
    calls = batch.platform_calls or 0
    # Paced even when a platform failed (its calls were spent): the next listing is the retry.
    ctx.listing.at = started
    ctx.listing.platform_calls = calls
    if batch.platform_ok:
        ctx.listing.orphans = len(batch.orphans)
    log.info(
        "tick.listing",
        instances=len(fleet),
        changed=len(changed),
        strangers=len(strangers),
        lost=len(lost),
        platform_calls=calls,
        platform_ok=batch.platform_ok,
        ms=round((time.monotonic() - started) * 1000),
    )
    return marked
