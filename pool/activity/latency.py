"""Claim latency as a fixed histogram: counts add across replicas and minutes, and a quantile of
any sum is read back to within one bucket (about ±20%: each bound is 1.5 times the one before)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

# 2 ms … about 10 minutes; the last bucket holds anything longer.
BOUNDS: tuple[float, ...] = tuple(0.002 * 1.5**i for i in range(32))
SIZE = len(BOUNDS) + 1


def bucket(seconds: float) -> int:
    return bisect.bisect_left(BOUNDS, seconds)


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The q-quantile of the histogram, interpolated linearly inside its bucket; None if empty."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, n in enumerate(counts):
        if n and seen + n >= rank:
            low = BOUNDS[index - 1] if index > 0 else 0.0
            high = BOUNDS[index] if index < len(BOUNDS) else BOUNDS[-1] * 1.5
            return low + (high - low) * max(0.0, rank - seen) / n
        seen += n
    return BOUNDS[-1]


def merge(histograms: Sequence[Sequence[int]]) -> list[int]:
    merged = [0] * SIZE
    for counts in histograms:
        for index, n in enumerate(counts[:SIZE]):
            merged[index] += n
    return merged
