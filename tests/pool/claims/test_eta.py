"""The queue's ETA (pool.claims.eta): position against the measured refill, as a table."""

from __future__ import annotations

import pytest

from pool.claims.eta import Supply, eta_seconds

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
