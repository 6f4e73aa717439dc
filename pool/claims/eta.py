"""How long a queued claim will wait: a pure function of its position and the measured refill.

The refill time is what the pool measured lately: from asking for an instance's create (its row's
`created_at`) to the instance first being idle (`ready_at`), the median over a recent window. The
queue is served in order, so the claim at position p gets the p-th instance to become idle:
- the idle ones first (the dispatcher is about to hand them out): ETA 0;
- then the instances already being made, soonest first, each ready a refill time after its create
  was asked for (one that is late counts as due now);
- then creates not yet asked for, `concurrency` at a time, a refill time per wave, as far as
  max_total leaves room. Past that room, or with nothing measured yet, there is no honest ETA: None.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# The window the refill time is measured over: the last this many instances made, within this long.
REFILL_SAMPLES = 50
REFILL_WINDOW_SECONDS = 3600.0


@dataclass(frozen=True)
class Supply:
    idle: int
    # Seconds since each in-flight (creating, starting) instance's create was asked for.
    in_flight_ages: tuple[float, ...]
    # Recent create-asked → idle durations, in seconds.
    refill_samples: tuple[float, ...]
    # More instances max_total allows.
    room: int
    concurrency: int = 1


def refill_seconds(samples: tuple[float, ...]) -> float | None:
    return statistics.median(samples) if samples else None


def eta_seconds(position: int, supply: Supply) -> float | None:
    """Seconds until the claim at `position` (1 = the head) gets an instance; None: unknown."""
    if position <= supply.idle:
        return 0.0
    refill = refill_seconds(supply.refill_samples)
    if refill is None:
        return None
    wanted = position - supply.idle
    due = sorted(max(0.0, refill - age) for age in supply.in_flight_ages)
    if wanted <= len(due):
        return round(due[wanted - 1], 1)
    beyond = wanted - len(due)
    if beyond > supply.room:
        return None
    waves = math.ceil(beyond / max(1, supply.concurrency))
    return round(waves * refill, 1)
