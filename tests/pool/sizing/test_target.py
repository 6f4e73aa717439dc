"""The demand-driven target (DESIGN.md §12): a table of cases, then properties over any input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pool.sizing.demand import DemandState, observe, quantile, refill_quantile
from pool.sizing.schedule import parse
from pool.sizing.target import Limits, Tuning, budget_cap, cover, size

MONDAY_NOON = datetime(2024, 1, 1, 12, tzinfo=UTC)
SUNDAY_NOON = datetime(2024, 1, 7, 12, tzinfo=UTC)


def per_minute(rate: float) -> DemandState:
    return DemandState(rate=rate / 60, peak=rate / 60, at=MONDAY_NOON)


# (case, claims/min, refill s, limits, spent idle-h, now) -> (target, limited_by, words in the reason)
CASES = [
    ("no demand, no floor", 0.0, 120.0, Limits(), 0.0, MONDAY_NOON, 0, None, "0.00 claims/min"),
    (
        "no demand keeps min_idle",
        0.0,
        120.0,
        Limits(min_idle=3),
        0.0,
        MONDAY_NOON,
        3,
        "min_idle",
        "min_idle 3",
    ),
    # 1/min × 150 s = 2.5 claims per refill: 8 idle cover 99% of refill windows.
    ("demand alone", 1.0, 150.0, Limits(), 0.0, MONDAY_NOON, 8, None, "2.50 per refill → 8 idle"),
    (
        "held to max_idle",
        1.0,
        150.0,
        Limits(max_idle=5),
        0.0,
        MONDAY_NOON,
        5,
        "max_idle",
        "held to max_idle 5",
    ),
    (
        "raised by schedule",
        0.1,
        150.0,
        Limits(schedules=(parse("weekdays 09-18 >= 10"),)),
        0.0,
        MONDAY_NOON,
        10,
        "schedule",
        "raised by schedule 'weekdays 09-18 >= 10'",
    ),
    (
        "schedule off at the weekend",
        0.1,
        150.0,
        Limits(schedules=(parse("weekdays 09-18 >= 10"),)),
        0.0,
        SUNDAY_NOON,
        3,
        None,
        "0.25 per refill → 3 idle",
    ),
    (
        "capped by budget",
        1.0,
        150.0,
        Limits(idle_hours_per_day=48.0),
        40.0,
        MONDAY_NOON,
        2,
        "budget",
        "capped by budget 48 idle-h/day (40.0 spent in 24 h) at 2",
    ),
    (
        "budget caps a schedule",
        0.0,
        150.0,
        Limits(schedules=(parse("daily 00-24 >= 10"),), idle_hours_per_day=24.0),
        0.0,
        MONDAY_NOON,
        6,
        "budget",
        "capped by budget 24 idle-h/day",
    ),
    (
        "min_idle wins over the budget",
        1.0,
        150.0,
        Limits(min_idle=4, idle_hours_per_day=24.0),
        30.0,
        MONDAY_NOON,
        4,
        "min_idle",
        "raised to min_idle 4",
    ),
    (
        "no refill measured: assumed",
        1.0,
        None,
        Limits(),
        0.0,
        MONDAY_NOON,
        9,
        None,
        "(assumed: none measured)",
    ),
]


@pytest.mark.parametrize(
    ("rate", "refill", "limits", "spent", "now", "target", "limited_by", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_target_table(
    rate: float,
    refill: float | None,
    limits: Limits,
    spent: float,
    now: datetime,
    target: int,
    limited_by: str | None,
    reason: str,
) -> None:
    sizing = size(per_minute(rate), refill, limits, now, spent_idle_hours=spent)
    assert (sizing.target, sizing.limited_by) == (target, limited_by)
    assert reason in sizing.reason


def test_margin_adds_to_demand_but_not_to_none() -> None:
    tuning = Tuning(margin=2)
    assert size(per_minute(1.0), 150.0, Limits(), MONDAY_NOON, tuning=tuning).target == 10
    assert size(per_minute(0.0), 150.0, Limits(), MONDAY_NOON, tuning=tuning).target == 0


def test_cover_is_the_poisson_quantile() -> None:
    # P(N <= 7 | 2.5) = 0.9958 >= 0.99 > P(N <= 6) = 0.9858: 8 instances.
    assert cover(2.5, 0.99) == 8
    assert cover(0.005, 0.99) == 0  # below one claim per hundred refills: none
    assert cover(0.02, 0.99) == 2
    assert cover(2000.0, 0.99) > 2000  # no underflow for large demand


def test_budget_cap() -> None:
    assert budget_cap(48.0, 0.0, 4.0) == 12  # 48 left, to last 4 h
    assert budget_cap(48.0, 40.0, 4.0) == 2  # the even share: 48/24
    assert budget_cap(48.0, 48.0, 4.0) == 0  # spent


def test_limits_refuse_contradictions() -> None:
    with pytest.raises(ValueError, match="below min_idle"):
        Limits(min_idle=5, max_idle=3)
    with pytest.raises(ValueError, match="hit_target"):
        Tuning(hit_target=1.0)


rates = st.floats(min_value=0, max_value=50, allow_nan=False)
refills = st.floats(min_value=0, max_value=3600, allow_nan=False)
limits = st.builds(
    lambda low, extra, budget: Limits(
        min_idle=low, max_idle=None if extra is None else low + extra, idle_hours_per_day=budget
    ),
    st.integers(0, 20),
    st.none() | st.integers(0, 50),
    st.none() | st.floats(min_value=0, max_value=2000, allow_nan=False),
)
spent = st.floats(min_value=0, max_value=3000, allow_nan=False)
hours = st.integers(0, 7 * 24 - 1)


@given(rates, refills, limits, spent, hours)
def test_never_below_floor_nor_above_max_or_budget(
    rate: float, refill: float, limits: Limits, spent: float, hour: int
) -> None:
    now = MONDAY_NOON + timedelta(hours=hour)
    sizing = size(per_minute(rate), refill, limits, now, spent_idle_hours=spent)
    assert sizing.target >= limits.min_idle
    if limits.max_idle is not None:
        assert sizing.target <= limits.max_idle
    if limits.idle_hours_per_day is not None:
        cap = budget_cap(limits.idle_hours_per_day, spent, Tuning().budget_pace_hours)
        assert sizing.target <= max(cap, limits.min_idle)
    assert sizing.reasons  # always explained


@given(rates, rates, refills, refills, limits)
def test_monotone_in_demand_and_refill_time(
    rate_a: float, rate_b: float, refill_a: float, refill_b: float, limits: Limits
) -> None:
    low = size(per_minute(min(rate_a, rate_b)), min(refill_a, refill_b), limits, MONDAY_NOON)
    high = size(per_minute(max(rate_a, rate_b)), max(refill_a, refill_b), limits, MONDAY_NOON)
    assert low.target <= high.target


def test_observe_reads_a_steady_rate_and_remembers_a_burst() -> None:
    state, now = DemandState(), MONDAY_NOON
    for _ in range(120):  # an hour of 2 claims per 30 s: 4/min
        now += timedelta(seconds=30)
        state = observe(state, 2, now)
    assert state.rate * 60 == pytest.approx(4.0, rel=0.01)
    # The peak remembered is 4/min less one standard deviation of its noise: √(λ/2τ) = 0.63/min.
    assert state.peak * 60 == pytest.approx(3.37, abs=0.01)
    for _ in range(240):  # two quiet hours
        now += timedelta(seconds=30)
        state = observe(state, 0, now)
    assert state.rate * 60 < 0.01
    # The peak has halved once in the default 2 h half-life, and sizing reads it.
    assert state.per_minute == pytest.approx(3.37 / 2, abs=0.01)


def test_refill_quantile_per_platform_with_fallback() -> None:
    samples = [("a", 100.0), ("a", 110.0), ("a", 300.0), ("b", 50.0)]
    assert refill_quantile(samples, "a", q=0.9) == 300.0
    assert refill_quantile(samples, "b", q=0.5) == 100.0  # b has one sample: every platform's
    assert refill_quantile([], "a") is None
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
