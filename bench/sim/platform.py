"""A model of the platform instances are made on: how long a create takes and how many fail.

Modelled on the fake Railway's `realistic` profile (devtools/faults.py, specs/railway.md §11):
each create waits for a free token (one project per `create_interval_s` per token, Railway's
"creating projects too quickly"), spends `create_s` in its own API calls, then a deploy of
`deploy_s` and a runtime boot of `boot_s` before it answers ready. A `failure_rate` of creates
fail once made (services reports the create `failed`; the pool drops the row and creates again).
All randomness comes from one seeded RNG per run, drawn in create order.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PlatformModel:
    name: str = "railway"
    tokens: int = 3
    create_interval_s: float = 30.0
    # Log-normal: median and 99th percentile of a create's own calls.
    create_s: tuple[float, float] = (6.0, 20.0)
    # Uniform ranges.
    deploy_s: tuple[float, float] = (60.0, 180.0)
    boot_s: tuple[float, float] = (20.0, 60.0)
    failure_rate: float = 0.02

    def describe(self) -> str:
        return (
            f"{self.tokens} tokens, one create per {self.create_interval_s:g} s per token; create calls "
            f"median {self.create_s[0]:g} s (p99 {self.create_s[1]:g} s), deploy {self.deploy_s[0]:g}-"
            f"{self.deploy_s[1]:g} s, boot {self.boot_s[0]:g}-{self.boot_s[1]:g} s; "
            f"{self.failure_rate * 100:g}% of creates fail"
        )


INSTANT = PlatformModel(
    "instant",
    tokens=1,
    create_interval_s=0.0,
    create_s=(0.0, 0.0),
    deploy_s=(0.0, 0.0),
    boot_s=(0.0, 0.0),
    failure_rate=0.0,
)


@dataclass(frozen=True)
class Made:
    """When services has made the create (or failed it), and when the runtime answers ready."""

    made_at: float
    ready_at: float
    failed: bool


class Platform:
    def __init__(self, model: PlatformModel, seed: int) -> None:
        self.model = model
        self.rng = random.Random(seed)
        # When each token may start its next create.
        self.tokens = [0.0] * max(1, model.tokens)
        heapq.heapify(self.tokens)

    def create(self, requested_at: float) -> Made:
        model = self.model
        start = max(requested_at, heapq.heappop(self.tokens))
        heapq.heappush(self.tokens, start + model.create_interval_s)
        made = start + self._lognormal(*model.create_s)
        ready = made + self.rng.uniform(*model.deploy_s) + self.rng.uniform(*model.boot_s)
        return Made(made, ready, self.rng.random() < model.failure_rate)

    def _lognormal(self, median: float, p99: float) -> float:
        if median <= 0:
            return 0.0
        sigma = math.log(max(p99, median) / median) / 2.3263
        return self.rng.lognormvariate(math.log(median), sigma)
