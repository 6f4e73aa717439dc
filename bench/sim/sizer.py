"""Our policy's part of a tick: the demand-driven target, then recycling and scale-down.

What the per-template tick will do once wired (issue 14): bring the demand state up to date with
the claims since the last tick, read the refill quantile, size, then retire idle rows. The
retirements come before the plan here, so the plan refills a recycled instance in the same tick.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bench.sim.fleet import PLATFORM
from bench.sim.policies import Policy
from pool.sizing import retire
from pool.sizing.demand import DemandState, observe, refill_quantile
from pool.sizing.target import Sizing, size
from pool.tick.plan import Destroy, Row


class Sizer:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.demand = DemandState()
        self.above_since: datetime | None = None

    def target(
        self,
        now: datetime,
        claims: int,
        refills: Sequence[tuple[str | None, float]],
        spent_idle_hours: float,
    ) -> Sizing:
        policy = self.policy
        self.demand = observe(
            self.demand,
            claims,
            now,
            smoothing_seconds=policy.smoothing_seconds,
            peak_half_life_seconds=policy.peak_half_life_seconds,
        )
        refill = refill_quantile(refills, PLATFORM, q=policy.refill_quantile)
        return size(
            self.demand, refill, policy.limits, now, spent_idle_hours=spent_idle_hours, tuning=policy.tuning
        )

    def recycle(self, rows: Sequence[Row], now: datetime) -> list[Destroy]:
        return retire.recycle(rows, now, max_idle_age_seconds=self.policy.max_idle_age_seconds)

    def drain(self, rows: Sequence[Row], target: int, now: datetime, queued: int) -> list[Destroy]:
        drained = retire.drain(
            rows,
            target,
            now,
            above_since=self.above_since,
            queued=queued,
            cooldown_seconds=self.policy.drain_cooldown_seconds,
        )
        self.above_since = drained.above_since
        return drained.destroys
