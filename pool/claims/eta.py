"""How long a queued claim will wait: a pure function of its position and the measured refill.

The refill time is what the pool measured lately: from asking for an instance's create (its row's
`created_at`) to the instance first being idle (`ready_at`), over a recent window, per platform
(an instance's refill is its platform's: one platform may make an instance in seconds, another
in minutes). The queue is served in order, so the claim at position p
gets the p-th instance to become idle:
- the idle ones first (the dispatcher is about to hand them out): ETA 0;
- then the instances already being made, soonest first, each expected when the median of the
  refills that took longer than its age so far would have it ready (so a create that is already
  late is expected with the slower ones, not "now"; later than every refill measured: due now);
- then creates not yet asked for, `concurrency` at a time, a refill time per wave, on the platform
  placement would use next, as far as max_total leaves room. Past that room, or with nothing
  measured yet, there is no honest ETA: None.
A platform with fewer than `MIN_PLATFORM_SAMPLES` refills measured is estimated from all of them.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

# The window the refill time is measured over: the last this many instances made, within this long.
REFILL_SAMPLES = 50
REFILL_WINDOW_SECONDS = 3600.0
MIN_PLATFORM_SAMPLES = 3


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
    # The platform of each in-flight instance and of each sample, in the same order (None: unknown).
    in_flight_platforms: tuple[str | None, ...] = ()
    sample_platforms: tuple[str | None, ...] = ()
    # Where placement would put the next create (None: unknown).
    next_platform: str | None = None

    def refills(self, platform: str | None) -> tuple[float, ...]:
        """The refill samples of `platform`, or all of them when it has too few (or is unknown)."""
        if platform is not None and self.sample_platforms:
            mine = tuple(
                sample
                for sample, where in zip(self.refill_samples, self.sample_platforms, strict=False)
                if where == platform
            )
            if len(mine) >= MIN_PLATFORM_SAMPLES:
                return mine
        return self.refill_samples

    def in_flight(self) -> list[tuple[float, str | None]]:
        platforms = self.in_flight_platforms or (None,) * len(self.in_flight_ages)
        return list(zip(self.in_flight_ages, platforms, strict=False))


def next_platform(views: list[dict[str, object]]) -> str | None:
    """Where placement would put the next create, from the platforms view the tick recorded (its
    JSON, camelCase): the first by priority that is healthy and has room; None when none does."""

    def priority(view: dict[str, object]) -> int:
        value = view.get("priority")
        return value if isinstance(value, int) else 0

    for view in sorted(views, key=priority):
        capacity, in_use = view.get("capacity"), view.get("inUse")
        has_room = capacity is None or (
            isinstance(capacity, int) and isinstance(in_use, int) and in_use < capacity
        )
        if view.get("health") == "ok" and has_room and isinstance(view.get("name"), str):
            return str(view["name"])
    return None


def refill_seconds(samples: tuple[float, ...]) -> float | None:
    return statistics.median(samples) if samples else None


def remaining_seconds(age: float, refills: tuple[float, ...]) -> float:
    """How much longer an instance whose create was asked `age` seconds ago is expected to take:
    the median of what the refills slower than `age` took beyond it (0 when none was that slow)."""
    slower = [refill - age for refill in refills if refill > age]
    return statistics.median(slower) if slower else 0.0


def eta_seconds(position: int, supply: Supply) -> float | None:
    """Seconds until the claim at `position` (1 = the head) gets an instance; None: unknown."""
    if position <= supply.idle:
        return 0.0
    if not supply.refill_samples:
        return None
    wanted = position - supply.idle
    due = sorted(remaining_seconds(age, supply.refills(platform)) for age, platform in supply.in_flight())
    if wanted <= len(due):
        return round(due[wanted - 1], 1)
    beyond = wanted - len(due)
    refill = refill_seconds(supply.refills(supply.next_platform))
    if beyond > supply.room or refill is None:
        return None
    waves = math.ceil(beyond / max(1, supply.concurrency))
    return round(waves * refill, 1)
