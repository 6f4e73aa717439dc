"""The idle target of one template, and why it has that value.

DESIGN.md §12: `max(schedule minimum, ⌈λ × R_q⌉ + margin)`, clamped to `[min_idle, max_idle]`,
capped by the template's idle-hours budget. The margin here is in two parts:

- headroom for chance: claims arrive at random, so with λ·R_q = x claims expected during one
  refill, a pool that keeps n instances ready misses a claim whenever n or more claims came in the
  refill window before it. n is the smallest count for which that happens to at most
  `1 − hit_target` of claims (Poisson arrivals: P(N ≥ n) ≤ 1 − hit_target, N ~ Poisson(x)). At
  x = 2.5 that is 8, where ⌈x⌉ + 1 = 4 would miss about a quarter of claims.
- `margin`: a fixed extra count on top (for failed creates, a tick's delay), 0 by default.

Below `1 − hit_target` claims expected per refill window (one claim per hundred refill times at
the default), demand is read as none: a decayed peak must not hold an instance forever.

The order of the limits, strongest first: max_idle, min_idle, the budget, schedules, demand. The
budget caps schedules but never the explicit floor (`min_idle`, which is `POOL_MIN_IDLE` for the
default template); an operator who sets both is told by the reason which one won.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime

from pool.sizing.demand import DemandState
from pool.sizing.schedule import Schedule, floor_at

DEFAULT_HIT_TARGET = 0.99
DEFAULT_REFILL_SECONDS = 180.0
# The budget may be spent faster than evenly across the day, but what is left must last this long.
DEFAULT_BUDGET_PACE_HOURS = 4.0


@dataclass(frozen=True)
class Limits:
    """What a template says about its idle instances."""

    min_idle: int = 0
    max_idle: int | None = None
    schedules: tuple[Schedule, ...] = ()
    # Idle instance-hours per rolling 24 h; None: no budget.
    idle_hours_per_day: float | None = None

    def __post_init__(self) -> None:
        if self.min_idle < 0:
            raise ValueError("min_idle must be >= 0")
        if self.max_idle is not None and self.max_idle < self.min_idle:
            raise ValueError(f"max_idle {self.max_idle} is below min_idle {self.min_idle}")
        if self.idle_hours_per_day is not None and self.idle_hours_per_day < 0:
            raise ValueError("idle_hours_per_day must be >= 0")


@dataclass(frozen=True)
class Tuning:
    """Pool-wide knobs of the demand part (the same for every template)."""

    hit_target: float = DEFAULT_HIT_TARGET
    margin: int = 0
    # The refill time assumed until one is measured.
    default_refill_seconds: float = DEFAULT_REFILL_SECONDS
    budget_pace_hours: float = DEFAULT_BUDGET_PACE_HOURS

    def __post_init__(self) -> None:
        if not 0 < self.hit_target < 1:
            raise ValueError("hit_target must be in (0, 1)")
        if self.margin < 0 or self.default_refill_seconds <= 0 or self.budget_pace_hours <= 0:
            raise ValueError("margin must be >= 0, default_refill_seconds and budget_pace_hours > 0")


@dataclass(frozen=True)
class Sizing:
    target: int
    # What demand alone asks for (before schedules and limits).
    demand: int
    # How it came about: the demand first, then every limit that changed the value.
    reasons: tuple[str, ...] = field(default_factory=tuple)
    # The limit that set the final value ("schedule", "budget", "min_idle", "max_idle"), or None
    # when demand alone did.
    limited_by: str | None = None

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def size(
    demand: DemandState,
    refill_seconds: float | None,
    limits: Limits,
    now: datetime,
    *,
    spent_idle_hours: float = 0.0,
    tuning: Tuning = Tuning(),
) -> Sizing:
    """The idle target at `now`. `refill_seconds`: a high quantile of recent refills (None: none
    measured); `spent_idle_hours`: the template's idle instance-hours over the last 24 h.

    Queued claims are not an input: the plan adds them to its deficit on top of this target
    (`pool.tick.plan.replenish_count`), and counting them here too would create them twice."""
    refill = refill_seconds if refill_seconds is not None else tuning.default_refill_seconds
    expected = demand.estimate * refill
    wanted = cover(expected, tuning.hit_target)
    wanted += tuning.margin if wanted else 0
    measured = "measured" if refill_seconds is not None else "assumed: none measured"
    reasons = [
        f"demand {demand.per_minute:.2f} claims/min × refill {refill:.0f} s ({measured}) = "
        f"{expected:.2f} per refill → {wanted} idle"
    ]
    value, limited_by = wanted, None
    scheduled, schedule = floor_at(limits.schedules, now)
    if schedule is not None and scheduled > value:
        value, limited_by = scheduled, "schedule"
        reasons.append(f"raised by schedule '{schedule}'")
    if limits.idle_hours_per_day is not None:
        cap = budget_cap(limits.idle_hours_per_day, spent_idle_hours, tuning.budget_pace_hours)
        if value > cap:
            value, limited_by = cap, "budget"
            reasons.append(
                f"capped by budget {limits.idle_hours_per_day:g} idle-h/day "
                f"({spent_idle_hours:.1f} spent in 24 h) at {cap}"
            )
    if value < limits.min_idle:
        value, limited_by = limits.min_idle, "min_idle"
        reasons.append(f"raised to min_idle {limits.min_idle}")
    if limits.max_idle is not None and value > limits.max_idle:
        value, limited_by = limits.max_idle, "max_idle"
        reasons.append(f"held to max_idle {limits.max_idle}")
    return Sizing(value, wanted, tuple(reasons), limited_by)


def cover(expected: float, hit_target: float) -> int:
    """The fewest ready instances such that at most `1 − hit_target` of claims find none, when the
    claims during one refill are Poisson with mean `expected` (a claim misses when `n` or more came
    in the refill window before it). 0 below `1 − hit_target` claims expected per refill."""
    if expected < 1 - hit_target:
        return 0
    # P(N <= k) summed in log space, so a large `expected` does not underflow e^(−x).
    cumulative, k = 0.0, 0
    limit = int(expected + 12 * math.sqrt(expected) + 12)
    while k <= limit:
        cumulative += math.exp(-expected + k * math.log(expected) - math.lgamma(k + 1))
        if cumulative >= hit_target:
            return k + 1
        k += 1
    return limit + 1


def budget_cap(idle_hours_per_day: float, spent_idle_hours: float, pace_hours: float) -> int:
    """Most idle instances the budget allows now: as many as the budget keeps all day, or more
    while what is left of it would last `pace_hours` at that count; 0 once it is spent."""
    left = idle_hours_per_day - spent_idle_hours
    if left <= 0:
        return 0
    return max(math.floor(idle_hours_per_day / 24), math.floor(left / pace_hours))
