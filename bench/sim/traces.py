"""Demand traces for the simulator: claim times in seconds from the trace's start.

Bundled (seeded, so a seed replays them): steady Poisson, bursty on/off, diurnal (one weekday) and
a flash crowd. Every bundled trace starts with a warm-up hour that the report leaves out, so each
policy is measured in the steady state it reaches, not while it learns.

Any other demand comes from a CSV of claim times (`--trace file.csv`): one claim per line, the
time in the first column, either seconds from the start (`12.5`) or an ISO-8601 time
(`2024-05-02T09:13:00Z`; without a zone, UTC), not both kinds in one file; an optional header
line; other columns are ignored. Times need not be sorted.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# The bundled traces start on a Monday at 00:00 UTC, so schedules and the diurnal shape line up.
MONDAY = datetime(2024, 1, 1, tzinfo=UTC)
WARMUP_SECONDS = 3600.0


class TraceError(ValueError):
    """A CSV trace that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Trace:
    name: str
    description: str
    claims: tuple[float, ...]  # seconds from `start`, sorted
    duration: float
    # Claims before this are the warm-up: simulated, not reported.
    measure_from: float = 0.0
    start: datetime = MONDAY

    def at(self, seconds: float) -> datetime:
        return self.start + timedelta(seconds=seconds)


def poisson(rng: random.Random, rate: Callable[[float], float], peak: float, until: float) -> list[float]:
    """A Poisson process of `rate(t)` claims/s (never above `peak`), by thinning."""
    times: list[float] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= until:
            return times
        if rng.random() * peak < rate(t):
            times.append(t)


def steady(seed: int, hours: float = 6.0, per_minute: float = 1.0) -> Trace:
    duration = WARMUP_SECONDS + hours * 3600
    claims = poisson(random.Random(seed), lambda t: per_minute / 60, per_minute / 60, duration)
    return Trace(
        "steady", f"Poisson, {per_minute:g} claims/min, {hours:g} h", tuple(claims), duration, WARMUP_SECONDS
    )


def bursty(
    seed: int, hours: float = 6.0, per_minute: float = 4.0, on_min: float = 15, period_min: float = 60
) -> Trace:
    duration = WARMUP_SECONDS + hours * 3600

    def rate(t: float) -> float:
        return per_minute / 60 if (t % (period_min * 60)) < on_min * 60 else 0.0

    claims = poisson(random.Random(seed), rate, per_minute / 60, duration)
    description = f"on/off: {per_minute:g} claims/min for {on_min:g} min of every {period_min:g}, {hours:g} h"
    return Trace("bursty", description, tuple(claims), duration, WARMUP_SECONDS)


def diurnal(seed: int, peak_per_minute: float = 3.0, night_per_minute: float = 0.05) -> Trace:
    """One weekday: quiet at night, rising from 07:00 to a peak at 14:00, quiet again by 21:00."""
    duration = WARMUP_SECONDS + 24 * 3600

    def rate(t: float) -> float:
        hour = ((t - WARMUP_SECONDS) / 3600) % 24
        day = math.sin(math.pi * (hour - 7) / 14) ** 2 if 7 <= hour <= 21 else 0.0
        return (night_per_minute + (peak_per_minute - night_per_minute) * day) / 60

    claims = poisson(random.Random(seed), rate, peak_per_minute / 60, duration)
    description = f"one weekday: {night_per_minute:g} claims/min at night, {peak_per_minute:g} at 14:00"
    # The warm-up is the hour before midnight, so the clock reads the day's hours.
    return Trace("diurnal", description, tuple(claims), duration, WARMUP_SECONDS, MONDAY - timedelta(hours=1))


def flash(
    seed: int, hours: float = 6.0, per_minute: float = 0.5, crowd: int = 40, within_s: float = 120
) -> Trace:
    rng = random.Random(seed)
    duration = WARMUP_SECONDS + hours * 3600
    claims = poisson(rng, lambda t: per_minute / 60, per_minute / 60, duration)
    at = WARMUP_SECONDS + hours * 3600 / 2
    claims += [at + rng.uniform(0, within_s) for _ in range(crowd)]
    description = (
        f"Poisson {per_minute:g} claims/min, {hours:g} h, {crowd} more within {within_s:g} s at mid-trace"
    )
    return Trace("flash", description, tuple(sorted(claims)), duration, WARMUP_SECONDS)


BUNDLED: dict[str, Callable[[int], Trace]] = {
    "steady": steady,
    "bursty": bursty,
    "diurnal": diurnal,
    "flash": flash,
}


def from_csv(path: Path, *, warmup_seconds: float = 0.0) -> Trace:
    """A trace from a CSV of claim times (see the module docstring); TraceError when unreadable."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    seconds: list[float] = []
    stamps: list[datetime] = []
    for number, row in enumerate(csv.reader(text.splitlines()), start=1):
        cell = row[0].strip() if row else ""
        if not cell or cell.startswith("#"):
            continue
        value = _seconds(cell)
        if value is not None:
            if value < 0 or not math.isfinite(value):
                raise TraceError(f"{path}:{number}: {cell!r} is not a time >= 0")
            if stamps:
                raise TraceError(f"{path}:{number}: mixes seconds and ISO-8601 times; use one kind")
            seconds.append(value)
            continue
        stamp = _stamp(cell)
        if stamp is None:
            if number == 1 and not seconds and not stamps:
                continue  # a header
            raise TraceError(
                f"{path}:{number}: {cell!r} is neither seconds from the start nor an ISO-8601 time"
            )
        if seconds:
            raise TraceError(f"{path}:{number}: mixes seconds and ISO-8601 times; use one kind")
        stamps.append(stamp)
    start = MONDAY
    if stamps:
        start = min(stamps)
        seconds = [(stamp - start).total_seconds() for stamp in stamps]
    if not seconds:
        raise TraceError(f"{path}: no claim times in it")
    claims = tuple(sorted(seconds))
    # The trace runs a refill past its last claim, so the last claims are served within it.
    duration = claims[-1] + 600.0
    if warmup_seconds >= claims[-1]:
        raise TraceError(f"{path}: the warm-up of {warmup_seconds:g} s covers every claim")
    return Trace(path.stem, f"{len(claims)} claims from {path.name}", claims, duration, warmup_seconds, start)


def _seconds(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _stamp(cell: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(cell.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=UTC)
