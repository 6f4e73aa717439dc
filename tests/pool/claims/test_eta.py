"""The queue's ETA (pool.claims.eta): position against the measured refill, as a table."""

from __future__ import annotations

import pytest

from pool.claims.eta import Supply, eta_seconds, next_platform

REFILL = (50.0, 60.0, 70.0)  # median 60 s


@pytest.mark.parametrize(
    ("position", "supply", "expected"),
    [
        # Idle instances go to the first positions at once.
        (1, Supply(idle=2, in_flight_ages=(), refill_samples=(), room=0), 0.0),
        (2, Supply(idle=2, in_flight_ages=(), refill_samples=(), room=0), 0.0),
        # Nothing measured yet: no honest ETA.
        (3, Supply(idle=2, in_flight_ages=(), refill_samples=(), room=10), None),
        # In-flight creates serve the next positions, soonest first (asked 45 s and 10 s ago).
        (1, Supply(idle=0, in_flight_ages=(10.0, 45.0), refill_samples=REFILL, room=10), 15.0),
        (2, Supply(idle=0, in_flight_ages=(10.0, 45.0), refill_samples=REFILL, room=10), 50.0),
        (3, Supply(idle=1, in_flight_ages=(10.0, 45.0), refill_samples=REFILL, room=10), 50.0),
        # A late create counts as due now.
        (1, Supply(idle=0, in_flight_ages=(90.0,), refill_samples=REFILL, room=10), 0.0),
        # Then creates not yet asked for, `concurrency` per refill time.
        (3, Supply(idle=0, in_flight_ages=(10.0, 45.0), refill_samples=REFILL, room=10, concurrency=2), 60.0),
        (4, Supply(idle=0, in_flight_ages=(10.0, 45.0), refill_samples=REFILL, room=10, concurrency=2), 60.0),
        (
            5,
            Supply(idle=0, in_flight_ages=(10.0, 45.0), refill_samples=REFILL, room=10, concurrency=2),
            120.0,
        ),
        (7, Supply(idle=0, in_flight_ages=(), refill_samples=REFILL, room=10, concurrency=4), 120.0),
        # Past what max_total leaves room for, nothing will be made for it: unknown.
        (4, Supply(idle=0, in_flight_ages=(10.0,), refill_samples=REFILL, room=2), None),
        (3, Supply(idle=0, in_flight_ages=(10.0,), refill_samples=REFILL, room=2), 120.0),
    ],
)
def test_eta_from_position_and_measured_refill(position: int, supply: Supply, expected: float | None) -> None:
    assert eta_seconds(position, supply) == expected


SHARED = (20.0, 30.0, 40.0)  # railway-shared: median 30 s
PROJECTS = (100.0, 120.0, 140.0)  # railway-projects: median 120 s
BOTH = Supply(
    idle=0,
    in_flight_ages=(10.0, 10.0),
    refill_samples=SHARED + PROJECTS,
    room=10,
    in_flight_platforms=("railway-projects", "railway-shared"),
    sample_platforms=("railway-shared",) * 3 + ("railway-projects",) * 3,
)


@pytest.mark.parametrize(
    ("position", "supply", "expected"),
    [
        # Each in-flight instance is expected on its own platform's refill: 30 - 10, then 120 - 10.
        (1, BOTH, 20.0),
        (2, BOTH, 110.0),
        # New creates take the refill of the platform placement would use next.
        (3, Supply(**{**BOTH.__dict__, "next_platform": "railway-projects"}), 120.0),
        (3, Supply(**{**BOTH.__dict__, "next_platform": "railway-shared"}), 30.0),
        # A platform with too few samples of its own is estimated from all of them (median 70).
        (3, Supply(**{**BOTH.__dict__, "next_platform": "local"}), 70.0),
        # A late create is expected with the slower refills that were as late, not now:
        # at 35 s on railway-shared only the 40 s refill was slower, 5 s beyond.
        (
            1,
            Supply(
                idle=0,
                in_flight_ages=(35.0,),
                refill_samples=SHARED,
                room=10,
                in_flight_platforms=("railway-shared",),
                sample_platforms=("railway-shared",) * 3,
            ),
            5.0,
        ),
    ],
)
def test_eta_uses_each_platforms_refill(position: int, supply: Supply, expected: float | None) -> None:
    assert eta_seconds(position, supply) == expected


def test_the_next_platform_is_the_first_healthy_one_with_room() -> None:
    views: list[dict[str, object]] = [
        {"name": "railway-projects", "priority": 2, "capacity": None, "inUse": 5, "health": "ok"},
        {"name": "railway-shared", "priority": 1, "capacity": 90, "inUse": 90, "health": "full"},
        {"name": "local", "priority": 0, "capacity": 0, "inUse": 0, "health": "draining"},
    ]
    assert next_platform(views) == "railway-projects"
    views[1].update(inUse=89, health="ok")
    assert next_platform(views) == "railway-shared"
    views[1]["health"] = "backing off"
    assert next_platform(views) == "railway-projects"
    assert next_platform([]) is None
