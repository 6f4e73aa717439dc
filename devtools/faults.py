"""Latency and fault profiles shared by every fake (Railway, the vendors, the runtimes they start).

A fake answering in microseconds cannot show timeout, pacing or overlap bugs, so each fake takes a
`Faults`: `instant` (unit tests, the default: no delay, no fault) or `realistic` (specs/railway.md
§11, an estimate until measured: log-normal latencies — queries median 250 ms / p99 1.5 s,
mutations 800 ms / 5 s, `projectCreate` 2 s / 10 s — about 1 % 502/503, 0.5 % answers that never
come before the client's timeout, 429 bursts with `Retry-After`, a 30 s project/volume cooldown per
token, deploys of 60-180 s and a runtime boot of 20-60 s after them, deploy events delivered after
median 1 s / p99 10 s with 2 % never delivered).

`time_scale` shrinks every duration of the profile (0.02: an hour of production in 72 s); rates are
per call and do not scale. Everything random comes from one seeded RNG, so a seed replays the dice
(the interleaving of real processes still varies). Selected by settings: `FAKE_PROFILE`,
`FAKE_TIME_SCALE`, `FAKE_SEED` (see `Faults.from_env`).

Operators of a test drive faults directly: `storm(n)` (the next n calls 429), `outage(n, "error")`
(the next n calls 503), `outage(n, "timeout")`. `injected` counts what was injected, by kind.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["query", "mutation", "slow"]
Outcome = Literal["ok", "error", "timeout", "429"]

# z of the 99th percentile of a standard normal: a log-normal's sigma from its median and p99.
_Z99 = 2.3263


@dataclass(frozen=True)
class Latency:
    median: float
    p99: float

    def sample(self, rng: random.Random) -> float:
        if self.median <= 0:
            return 0.0
        sigma = math.log(max(self.p99, self.median) / self.median) / _Z99
        return rng.lognormvariate(math.log(self.median), sigma)


NONE = Latency(0.0, 0.0)


@dataclass(frozen=True)
class Profile:
    name: str
    query: Latency = NONE
    mutation: Latency = NONE
    # The slowest mutation (Railway's projectCreate), with a long tail.
    slow: Latency = NONE
    # Per call: an HTTP 502/503, an answer that never comes, the start of a 429 burst.
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    burst_rate: float = 0.0
    burst_calls: int = 0
    retry_after_seconds: float = 1.0
    # Per token, between two creations of a project (or a volume).
    create_cooldown_seconds: float = 0.0
    # A deploy from QUEUED to SUCCESS, then the runtime's boot before it answers ready (uniform).
    deploy_seconds: tuple[float, float] = (0.2, 0.2)
    boot_seconds: tuple[float, float] = (0.0, 0.0)
    # How long an answer that "never comes" is held: longer than any client's timeout.
    hang_seconds: float = 120.0
    # A deploy event (notification-rule webhook): delivered after this delay, or lost at this rate.
    event_delay: Latency = NONE
    event_loss_rate: float = 0.0


INSTANT = Profile("instant")
REALISTIC = Profile(
    "realistic",
    query=Latency(0.25, 1.5),
    mutation=Latency(0.8, 5.0),
    slow=Latency(2.0, 10.0),
    error_rate=0.01,
    timeout_rate=0.005,
    burst_rate=0.003,
    burst_calls=8,
    retry_after_seconds=3.0,
    create_cooldown_seconds=30.0,
    deploy_seconds=(60.0, 180.0),
    boot_seconds=(20.0, 60.0),
    event_delay=Latency(1.0, 10.0),
    event_loss_rate=0.02,
)
PROFILES = {profile.name: profile for profile in (INSTANT, REALISTIC)}


class Faults:
    """One fake's dice and its record of what it injected."""

    def __init__(self, profile: Profile = INSTANT, *, time_scale: float = 1.0, seed: int = 0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.profile = profile
        self.time_scale = time_scale
        self.seed = seed
        self.rng = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self._forced: deque[Outcome] = deque()
        self._burst_left = 0

    @classmethod
    def from_env(cls, prefix: str = "FAKE_", *, salt: str = "") -> Faults:
        """`FAKE_PROFILE` (instant | realistic), `FAKE_TIME_SCALE`, `FAKE_SEED`; `salt` gives each fake of
        one run its own stream of dice from the one seed."""
        name = os.environ.get(f"{prefix}PROFILE", "instant")
        if name not in PROFILES:
            raise ValueError(f"{prefix}PROFILE must be one of {sorted(PROFILES)}, not {name!r}")
        scale = float(os.environ.get(f"{prefix}TIME_SCALE", "1"))
        seed = int(os.environ.get(f"{prefix}SEED", "0"))
        return cls.named(name, time_scale=scale, seed=seed, salt=salt)

    @classmethod
    def named(cls, name: str, *, time_scale: float = 1.0, seed: int = 0, salt: str = "") -> Faults:
        # Not hash(): str hashes change per process, and the seed must replay.
        mixed = seed ^ int.from_bytes(salt.encode()[:8].ljust(8, b"\0"), "big")
        return cls(PROFILES[name], time_scale=time_scale, seed=mixed)

    def with_profile(self, **changes: object) -> Faults:
        """The same dice on a changed profile (e.g. `error_rate=0` once the faults stop)."""
        self.profile = replace(self.profile, **changes)  # type: ignore[arg-type]
        return self

    @property
    def active(self) -> bool:
        return self.profile is not INSTANT or bool(self._forced)

    def scaled(self, seconds: float) -> float:
        return seconds * self.time_scale

    def latency(self, kind: Kind) -> float:
        latency = {"query": self.profile.query, "mutation": self.profile.mutation, "slow": self.profile.slow}
        return self.scaled(latency[kind].sample(self.rng))

    def uniform(self, bounds: tuple[float, float]) -> float:
        low, high = bounds
        return self.scaled(self.rng.uniform(low, high))

    def event_delay(self) -> float | None:
        """Seconds until a deploy event is delivered, or None when it is lost (counted)."""
        if self.profile.event_loss_rate and self.rng.random() < self.profile.event_loss_rate:
            self.injected["event_lost"] += 1
            return None
        return self.scaled(self.profile.event_delay.sample(self.rng))

    @property
    def retry_after(self) -> float:
        return self.scaled(self.profile.retry_after_seconds)

    @property
    def cooldown(self) -> float:
        return self.scaled(self.profile.create_cooldown_seconds)

    @property
    def hang(self) -> float:
        return self.profile.hang_seconds

    def storm(self, calls: int) -> None:
        """The next `calls` calls answer 429 with `Retry-After`."""
        self._forced.extend(["429"] * calls)

    def outage(self, calls: int, outcome: Outcome = "error") -> None:
        self._forced.extend([outcome] * calls)

    def calm(self) -> None:
        """Drop forced outcomes and any burst in progress (the profile's own dice keep rolling)."""
        self._forced.clear()
        self._burst_left = 0

    def decide(self) -> Outcome:
        """What happens to this call; counted in `injected` unless ok."""
        outcome = self._roll()
        if outcome != "ok":
            self.injected[outcome] += 1
        return outcome

    def _roll(self) -> Outcome:
        if self._forced:
            return self._forced.popleft()
        if self._burst_left > 0:
            self._burst_left -= 1
            return "429"
        profile = self.profile
        roll = self.rng.random()
        if roll < profile.burst_rate:
            self._burst_left = max(profile.burst_calls - 1, 0)
            return "429"
        roll -= profile.burst_rate
        if roll < profile.error_rate:
            return "error"
        roll -= profile.error_rate
        if roll < profile.timeout_rate:
            return "timeout"
        return "ok"

    async def delay(self, kind: Kind) -> None:
        seconds = self.latency(kind)
        if seconds > 0:
            await asyncio.sleep(seconds)
