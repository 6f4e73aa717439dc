"""Which idle instances to take out of the pool: the stale ones and the ones above target.

Both return `pool.tick.plan.Destroy` actions (conditional on `idle`, so a claim that takes the
instance first wins), for the tick to apply like its own; the plan then refills whatever the
target still wants. Neither touches anything but idle rows.

- Recycling: an instance idle for longer than `max_idle_age` is replaced by a fresh one (an
  instance that waited a day may run yesterday's image or have drifted). A few per tick, oldest
  first, so a pool whose instances all turn stale together is not emptied at once.
- Scale-down: when the supply (idle, starting, creating) stays above the target for a whole
  cooldown, the oldest idle ones are drained down to it. The cooldown keeps a pool from
  destroying what the next burst needs; while claims are queued nothing is drained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pool.tick.plan import Destroy, Row
from pool.tick.targets import SUPPLY

DEFAULT_MAX_IDLE_AGE_SECONDS = 24 * 3600.0
DEFAULT_RECYCLE_PER_TICK = 1
DEFAULT_DRAIN_COOLDOWN_SECONDS = 900.0


def recycle(
    rows: Sequence[Row],
    now: datetime,
    *,
    max_idle_age_seconds: float = DEFAULT_MAX_IDLE_AGE_SECONDS,
    limit: int = DEFAULT_RECYCLE_PER_TICK,
) -> list[Destroy]:
    """The idle rows idle for `max_idle_age_seconds` or longer, longest idle first, at most `limit`."""
    stale = sorted(
        (
            row
            for row in rows
            if row.status == "idle" and (now - row.status_changed_at).total_seconds() >= max_idle_age_seconds
        ),
        key=lambda row: (row.status_changed_at, row.id),
    )
    return [
        Destroy(
            row.id,
            "idle",
            "dead",
            f"recycled: idle {(now - row.status_changed_at).total_seconds() / 3600:.1f} h, "
            f"past the max idle age {max_idle_age_seconds / 3600:g} h",
        )
        for row in stale[: max(0, limit)]
    ]


@dataclass(frozen=True)
class Drain:
    destroys: list[Destroy]
    # Since when the supply has been above the target (None: it is not); the caller keeps it for
    # the next tick.
    above_since: datetime | None


def drain(
    rows: Sequence[Row],
    target: int,
    now: datetime,
    *,
    above_since: datetime | None,
    queued: int = 0,
    cooldown_seconds: float = DEFAULT_DRAIN_COOLDOWN_SECONDS,
) -> Drain:
    """Drain the oldest idle rows down to `target` once the supply has stayed above it since
    `above_since` for `cooldown_seconds`. After a drain the cooldown starts again."""
    supply = sum(1 for row in rows if row.status in SUPPLY)
    excess = supply - target
    if excess <= 0 or queued > 0:
        return Drain([], None)
    if above_since is None or (now - above_since).total_seconds() < cooldown_seconds:
        return Drain([], above_since or now)
    idle = sorted((row for row in rows if row.status == "idle"), key=lambda row: (row.created_at, row.id))
    reason = (
        f"scale-down: {supply} ready or coming above the target {target} for "
        f"{(now - above_since).total_seconds() / 60:.0f} min"
    )
    return Drain([Destroy(row.id, "idle", "dead", reason) for row in idle[:excess]], None)
