"""What one tick observes: what can have changed, plus a bounded slice of the rest.

At 10,000 steady instances, observing every one every tick (a health probe each, the platform's
pages) cost 11 s a tick in shared mode and changed nothing. A tick now asks services about:

- *watched* rows, every tick, platform included: `starting`, `crashed`, `tainted`, `dead`,
  any row with failed probes, and every id marked to observe now (`TickContext.observe_soon`:
  a deploy event, or the safety-net listing's findings, `pool.tick.listing`);
- `creating` rows (services reports their phase; it asks no platform about them);
- a *rotation* of the steady rows (`idle`, `claimed`, `pending_acceptance`, `sleeping` with no
  failed probe): the `max(floor, ceil(n × tick interval ÷ period))` least recently observed
  (`instances.last_probe_at`, stamped whenever a tick observes a row). The first `floor`
  (`POOL_OBSERVE_FLOOR_PER_TICK`, 100) of them are asked of the platform too (batched);
  the rest are probed, with the deploy status services last observed (the listing covers the
  platform). A fleet of at most `floor` steady instances is thus observed in full every tick.

Nothing else is read into: a row not observed keeps its status and counters (`Observed.
unobserved`), and only template checks that need no observation apply to it (`pool.tick.plan`).

The bound (the safety net): with `P = POOL_OBSERVE_ROTATION_SECONDS` and `I` the tick interval,
a steady instance is observed within `P + 2·I` of its previous observation while ticks run and
services answers. Each tick takes the `k ≥ n·I/P` least recently observed; an instance has at
most `n - 1` older ones ahead of it, so it is taken within `ceil(n/k) ≤ ceil(P/I)` ticks; ticks
start `I` apart (an overrun starts the next at once), so that is at most `P + I` after the tick
that first saw it due, one more `I` for the tick's own phase. Rows a tick did not manage to
observe (no answer, not probed before services' deadline) keep their stamp and so stay first.
`P = 0` observes every instance every tick.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import text

from pool.status import Status
from pool.tick.context import TickContext
from pool.tick.plan import Row

WATCHED: frozenset[Status] = frozenset({"starting", "crashed", "tainted", "dead"})
ROTATED: frozenset[Status] = frozenset({"idle", "claimed", "pending_acceptance", "sleeping"})

# Least recently observed first; never observed (a new leader's first ticks, rows written by
# hand) before any; the id orders ties so a rotation never skips a row stamped at the same time.
_ROTATION = text(
    """
    SELECT id FROM instances
    WHERE status = ANY(CAST(:statuses AS text[])) AND failed_probes = 0
      AND NOT (id = ANY(CAST(:skip AS text[])))
    ORDER BY last_probe_at ASC NULLS FIRST, id
    LIMIT :size
    """
)


@dataclass(frozen=True)
class Selection:
    # Every id the tick asks services about (`StatusBatchRequest.instance_ids`).
    observe: list[str]
    # Of them, the ones the platform is asked about now (`platform_ids`).
    platform: list[str]
    # The ids taken from `TickContext.observe_now` (given back if services does not answer).
    marked: frozenset[str]
    rotated: int


def rotation_size(count: int, *, interval: float, period: float, floor: int = 0) -> int:
    """Steady rows one tick observes: all of them with no period, else an even spread over the
    period, and never fewer than `floor`."""
    if period <= 0:
        return count
    return min(count, max(floor, math.ceil(count * interval / period)))


def watched(row: Row, marked: frozenset[str]) -> bool:
    return row.status in WATCHED or row.id in marked or (row.status in ROTATED and row.failed_probes > 0)


async def select(ctx: TickContext, rows: list[Row]) -> Selection:
    marked = frozenset(ctx.observe_now)
    ctx.observe_now.clear()
    hot = [row.id for row in rows if watched(row, marked)]
    creating = [row.id for row in rows if row.status == "creating" and row.id not in marked]
    steady = sum(
        1 for row in rows if row.status in ROTATED and row.failed_probes == 0 and row.id not in marked
    )
    s = ctx.settings
    floor = s.observe_floor_per_tick
    size = rotation_size(
        steady, interval=s.tick_interval_seconds, period=s.observe_rotation_seconds, floor=floor
    )
    rotated: list[str] = []
    if size:
        async with ctx.sessionmaker() as session:
            found = await session.execute(
                _ROTATION, {"statuses": sorted(ROTATED), "skip": sorted(marked), "size": size}
            )
            rotated = list(found.scalars())
    # Marked ids the pool has no row for (services holds them): observed so the plan's orphan
    # rule sees them.
    strangers = sorted(marked - {row.id for row in rows if row.id in marked})
    return Selection(
        observe=creating + hot + rotated + strangers,
        platform=hot + strangers + rotated[:floor],
        marked=marked,
        rotated=len(rotated),
    )
