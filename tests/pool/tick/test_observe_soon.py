"""The per-instance debounce of event-driven observations (pool/tick/observe_soon.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pool.tick.observe_soon import ObserveSoon


class Observer:
    """Records when each instance's observation started; each takes `seconds`."""

    def __init__(self, seconds: float = 0.1, actions: dict[str, int] | None = None) -> None:
        self.seconds = seconds
        self.actions = actions or {}
        self.started: list[tuple[str, float]] = []
        self.running = 0
        self.most_at_once = 0

    async def __call__(self, instance_id: str) -> dict[str, Any]:
        self.started.append((instance_id, time.monotonic()))
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.running -= 1
        return {"actions": self.actions}


async def settle(soon: ObserveSoon, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while soon._entries and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert not soon._entries


async def test_a_burst_is_one_observation_in_flight_and_one_more_after_it() -> None:
    observer = Observer()
    soon = ObserveSoon(observer, spacing_seconds=0.0, concurrency=8)
    answers = [soon.ask("aaaaaaaaaaaa") for _ in range(50)]
    assert answers[:3] == ["started", "queued", "coalesced"]
    assert set(answers[2:]) == {"coalesced"}
    await settle(soon)
    assert [i for i, _ in observer.started] == ["aaaaaaaaaaaa"] * 2
    # The second began after the first ended.
    assert observer.started[1][1] - observer.started[0][1] >= 0.09


async def test_a_lone_event_is_observed_once_and_at_once() -> None:
    observer = Observer(seconds=0.0)
    soon = ObserveSoon(observer, spacing_seconds=10.0, concurrency=8)
    asked = time.monotonic()
    assert soon.ask("aaaaaaaaaaaa") == "started"
    await settle(soon)
    assert len(observer.started) == 1
    assert observer.started[0][1] - asked < 0.5


async def test_observations_of_one_instance_are_spaced() -> None:
    observer = Observer(seconds=0.0)
    soon = ObserveSoon(observer, spacing_seconds=0.3, concurrency=8)
    soon.ask("aaaaaaaaaaaa")
    await asyncio.sleep(0.01)
    soon.ask("aaaaaaaaaaaa")
    await settle(soon)
    soon.ask("aaaaaaaaaaaa")  # the flood goes on: still spaced from the last start
    await settle(soon)
    starts = [at for _, at in observer.started]
    assert len(starts) == 3
    assert all(later - earlier >= 0.29 for earlier, later in zip(starts, starts[1:], strict=False))


async def test_instances_are_observed_side_by_side_within_the_concurrency() -> None:
    observer = Observer(seconds=0.1)
    soon = ObserveSoon(observer, spacing_seconds=0.0, concurrency=3)
    for n in range(10):
        soon.ask(f"{n:012d}")
    await settle(soon)
    assert len(observer.started) == 10
    assert observer.most_at_once == 3


async def test_a_recorded_create_is_looked_at_once_more() -> None:
    observer = Observer(seconds=0.0, actions={"created": 1})
    soon = ObserveSoon(observer, spacing_seconds=0.0, concurrency=1)
    soon.ask("aaaaaaaaaaaa")
    await asyncio.sleep(0.2)
    await soon.stop()
    # Each observation that recorded a create asks for one more; here every one does, so it goes on
    # until stopped (a real create is recorded once).
    assert len(observer.started) >= 2


async def test_a_failing_observation_is_logged_and_forgotten() -> None:
    async def broken(instance_id: str) -> dict[str, Any]:
        raise RuntimeError("services down")

    soon = ObserveSoon(broken, spacing_seconds=0.0, concurrency=1)
    soon.ask("aaaaaaaaaaaa")
    await settle(soon)
    assert soon.runs == 1
