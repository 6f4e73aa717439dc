"""How much demand a template sees, and how long a new instance takes to be ready.

The claim rate is an exponentially smoothed count: each claim adds about 1/τ to the rate and the
rate decays by e^(−Δt/τ), so a steady λ claims/s reads λ on average and a burst shows within a
fraction of τ. The smoothed rate alone forgets a burst as fast as it saw it; the pool has to keep
instances ready for the next one, so a peak is remembered too and decays more slowly (its own
half-life). Sizing reads the peak, which is never below the rate.

The state is three numbers, kept between ticks (and across restarts if the caller stores it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

DEFAULT_SMOOTHING_SECONDS = 300.0
DEFAULT_PEAK_HALF_LIFE_SECONDS = 2 * 3600.0


@dataclass(frozen=True)
class DemandState:
    """The smoothed claim rate and its remembered peak, both in claims per second."""

    rate: float = 0.0
    peak: float = 0.0
    # When it was last brought up to date; None: nothing observed yet.
    at: datetime | None = None

    @property
    def estimate(self) -> float:
        """The rate sizing reads: the current one, or the remembered peak when it is higher."""
        return max(self.rate, self.peak)

    @property
    def per_minute(self) -> float:
        return self.estimate * 60.0


def observe(
    state: DemandState,
    claims: int,
    now: datetime,
    *,
    smoothing_seconds: float = DEFAULT_SMOOTHING_SECONDS,
    peak_half_life_seconds: float = DEFAULT_PEAK_HALF_LIFE_SECONDS,
) -> DemandState:
    """The state at `now`, given `claims` claims made since `state.at` (all of them, hits and
    queued: a claim the pool could not serve at once is demand too)."""
    if claims < 0:
        raise ValueError("claims must be >= 0")
    if smoothing_seconds <= 0 or peak_half_life_seconds <= 0:
        raise ValueError("smoothing_seconds and peak_half_life_seconds must be > 0")
    elapsed = 0.0 if state.at is None else max(0.0, (now - state.at).total_seconds())
    decay = math.exp(-elapsed / smoothing_seconds)
    # The claims came anywhere in the interval: spread evenly over it, they add (1 − decay)/Δt
    # each, so a steady λ reads λ whatever the tick (counted as if just now, it would read high).
    weight = (1 - decay) / elapsed if elapsed > 0 else 1 / smoothing_seconds
    rate = state.rate * decay + claims * weight
    # The peak remembers the rate less one standard deviation of its noise (a Poisson rate
    # smoothed over τ wobbles by √(λ / 2τ)): a real burst is remembered, a lucky minute is not.
    settled = max(0.0, rate - math.sqrt(rate / (2 * smoothing_seconds)))
    peak = max(settled, state.peak * 0.5 ** (elapsed / peak_half_life_seconds))
    return DemandState(rate=rate, peak=peak, at=now if state.at is None else max(now, state.at))


DEFAULT_REFILL_QUANTILE = 0.9
# Fewer samples than this from one platform: the quantile is taken over every platform's.
MIN_PLATFORM_SAMPLES = 3


def quantile(samples: Sequence[float], q: float) -> float | None:
    """Nearest-rank quantile (`q` in (0, 1]); None without samples."""
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def refill_quantile(
    samples: Sequence[tuple[str | None, float]],
    platform: str | None = None,
    *,
    q: float = DEFAULT_REFILL_QUANTILE,
) -> float | None:
    """The `q` quantile of recent refill times (create requested → idle, seconds) of `platform`;
    of every platform's when it has fewer than MIN_PLATFORM_SAMPLES (or is None). None: no
    samples at all. `samples` are (platform, seconds) pairs, the caller's recent window."""
    mine = [seconds for where, seconds in samples if platform is not None and where == platform]
    if len(mine) >= MIN_PLATFORM_SAMPLES:
        return quantile(mine, q)
    return quantile([seconds for _, seconds in samples], q)
