"""Which idle instances a tick asks `/convos/status` (the rotation), as a pure function."""

from __future__ import annotations

from pool.tick.runtimes import rotation

IDS = [f"i{n:011d}" for n in range(10)]


def test_every_idle_instance_is_asked_every_tick_when_the_period_is_zero() -> None:
    assert rotation({}, IDS, now=100.0, period=0, interval=30, cap=2) == IDS


def test_the_rotation_spreads_the_idle_over_the_period_least_recently_asked_first() -> None:
    # 10 idle, 30 s ticks, 150 s period: 2 per tick; never-asked first, then the oldest.
    last = {IDS[0]: 10.0, IDS[1]: 5.0}
    picked = rotation(last, IDS, now=200.0, period=150, interval=30, cap=100)
    assert picked == [IDS[2], IDS[3]]
    last = {i: 100.0 for i in IDS} | {IDS[7]: 40.0, IDS[4]: 20.0}
    assert rotation(last, IDS, now=200.0, period=150, interval=30, cap=100) == [IDS[4], IDS[7]]


def test_an_instance_asked_within_the_period_is_not_asked_again() -> None:
    last = {i: 100.0 for i in IDS}
    assert rotation(last, IDS, now=200.0, period=150, interval=30, cap=100) == []


def test_the_per_tick_cap_bounds_a_new_leaders_first_burst() -> None:
    many = [f"i{n:011d}" for n in range(10_000)]
    assert len(rotation({}, many, now=0.0, period=600, interval=30, cap=200)) == 200
