"""The sizing policies the simulator compares.

- `static N`: the pool today with `POOL_MIN_IDLE=N`: each tick's plan refills to N (plus the queued
  claims), and a claim refills the deficit at once (`pool.tick.replenish`, the refill after a claim).
- `original N`: the original system's pool: N idle kept by its tick, and one replacement created
  for every claim as it comes (replace-on-claim); it had no queue, so its tick does not count
  waiting claims (they are served as instances come up, as if their callers retried).
- `ours`: the same mechanics as static, with N the demand-driven target of `pool.sizing` at each
  tick, idle instances past a maximum age recycled and the oldest idle drained after a cooldown
  above target.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from pool.sizing import retire
from pool.sizing.demand import (
    DEFAULT_PEAK_HALF_LIFE_SECONDS,
    DEFAULT_REFILL_QUANTILE,
    DEFAULT_SMOOTHING_SECONDS,
)
from pool.sizing.schedule import parse
from pool.sizing.target import Limits, Tuning

Kind = Literal["static", "original", "ours"]
STATIC_SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)
ORIGINAL_MIN_IDLE = 3  # the original's POOL_MIN_IDLE default


@dataclass(frozen=True)
class Policy:
    name: str
    kind: Kind
    min_idle: int = 0
    limits: Limits = field(default_factory=Limits)
    tuning: Tuning = field(default_factory=Tuning)
    refill_quantile: float = DEFAULT_REFILL_QUANTILE
    smoothing_seconds: float = DEFAULT_SMOOTHING_SECONDS
    peak_half_life_seconds: float = DEFAULT_PEAK_HALF_LIFE_SECONDS
    max_idle_age_seconds: float = retire.DEFAULT_MAX_IDLE_AGE_SECONDS
    drain_cooldown_seconds: float = retire.DEFAULT_DRAIN_COOLDOWN_SECONDS


def static(size: int) -> Policy:
    return Policy(f"static {size}", "static", min_idle=size)


def original(size: int = ORIGINAL_MIN_IDLE) -> Policy:
    return Policy(f"original {size}", "original", min_idle=size)


def ours(limits: Limits | None = None, name: str = "ours") -> Policy:
    return Policy(name, "ours", limits=limits or Limits())


# The flash crowd of the bundled trace comes at 04:00 on its Monday: a launch an operator knows of.
FLASH_SCHEDULE = "mon 03:45-04:15 >= 40"


def default_policies(trace: str = "") -> list[Policy]:
    """What one run compares: static sizes, the original, ours with its defaults, ours reading the
    median refill instead of p90, ours under a budget; on the flash crowd, ours with a schedule."""
    policies = [
        *(static(size) for size in STATIC_SIZES),
        original(),
        ours(),
        replace(ours(name="ours, refill p50"), refill_quantile=0.5),
        ours(Limits(idle_hours_per_day=48.0), name="ours, budget 48 idle-h/day"),
    ]
    if trace == "flash":
        scheduled = Limits(schedules=(parse(FLASH_SCHEDULE),))
        policies.append(ours(scheduled, name=f"ours, schedule '{FLASH_SCHEDULE}'"))
        # The launch known ahead, and the spike not held for hours after it (the peak halves every
        # 30 min instead of 2 h): POOL_SIZING_PEAK_HALF_LIFE_SECONDS=1800.
        policies.append(
            replace(
                ours(scheduled, name="ours, schedule, peak half-life 30 min"), peak_half_life_seconds=1800.0
            )
        )
    return policies
