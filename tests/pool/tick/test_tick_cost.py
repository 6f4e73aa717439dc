"""A tick that costs O(changes) (issue 14): what a tick observes, the bound within which the
rotation sees every steady instance, the listing that catches a missed event and its pacing.

services here is a small app that answers `/status/batch` the way services does for the request
it gets (the ids asked, the platform asked only about `platformIds`, a `changesOnly` listing),
over real HTTP, against a real pool database and the fake fleet: what is under test is the pool's
choice of what to observe and what it does with the answer. services' own side of the request is
tested in tests/services/status/test_status_subsets.py.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI

from pool.tick import listing
from pool.tick.selection import rotation_size
from shared.schemas import HealthProbe, InstanceObservation, StatusBatch, StatusBatchRequest
from tests.fakes.fleet import FakeFleet, create_fleet_app
from tests.pool.factories import ENCRYPTION_KEY, add_fleet_instances
from tests.pool.tick.conftest import pool_runner, pool_settings
from tests.pool.tick.test_tick_asks import rows
from tests.support import serve


class Services:
    """What the stub services was asked, and the platform's truth it reports when asked."""

    def __init__(self, fleet: FakeFleet) -> None:
        self.fleet = fleet
        self.requests: list[StatusBatchRequest] = []
        self.platform: dict[str, str] = {}  # instance id -> deploy status, where not running
        self.unhealthy: set[str] = set()  # what its health probes would find down
        self.down = False

    def observation(self, instance_id: str, deploy: str) -> InstanceObservation:
        return InstanceObservation(
            instance_id=instance_id,
            url=self.fleet.url(instance_id),
            deploy_status=deploy,
            health=(
                HealthProbe(ok=instance_id not in self.unhealthy, status_code=200, ready=True)
                if deploy == "running"
                else None
            ),
            created_at=datetime.now(UTC),
            phase="deploying",
        )

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/status/batch")
        async def batch(body: StatusBatchRequest) -> StatusBatch:
            if self.down:
                raise RuntimeError("services is down")
            self.requests.append(body)
            known = list(self.fleet.agents)
            now = datetime.now(UTC)
            if body.changes_only:
                changed = {i: self.observation(i, d) for i, d in self.platform.items() if i in known}
                return StatusBatch(observed_at=now, instances=changed, fleet=known, platform_calls=22)
            ids = known if body.instance_ids is None else [i for i in body.instance_ids if i in known]
            on_platform = set(ids if body.platform_ids is None else body.platform_ids)
            return StatusBatch(
                observed_at=now,
                instances={
                    i: self.observation(i, self.platform.get(i, "running") if i in on_platform else "running")
                    for i in ids
                },
            )

        @app.delete("/destroy/{instance_id}")
        async def destroy(instance_id: str) -> dict[str, object]:
            self.fleet.agents.pop(instance_id, None)
            return {"instanceId": instance_id, "destroyed": True, "alreadyGone": False}

        @app.get("/platforms")
        async def platforms() -> dict[str, object]:
            return {"observedAt": datetime.now(UTC).isoformat(), "platforms": []}

        return app

    def observed(self, request: StatusBatchRequest) -> set[str]:
        return set(request.instance_ids or [])


@pytest.fixture
async def stub() -> AsyncIterator[tuple[Services, str]]:
    fleet = FakeFleet()
    async with serve(create_fleet_app(fleet)) as fleet_url:
        fleet.base_url = fleet_url
        services = Services(fleet)
        async with serve(services.app()) as url:
            yield services, url


def settings_for(pool_db_url: str, url: str, **overrides: object) -> object:
    values: dict[str, object] = {
        "encryption_key": ENCRYPTION_KEY,
        "min_idle": 0,
        "max_total": 100,
        "tick_interval_seconds": 10,
        "observe_rotation_seconds": 60,
        "observe_floor_per_tick": 0,
    }
    return pool_settings(pool_db_url, url, **(values | overrides))


def test_the_rotation_spreads_the_steady_fleet_over_the_period_never_below_the_floor() -> None:
    # 10,000 idle, 30 s ticks, 300 s period: 1,000 a tick; never fewer than the floor; 0: all.
    assert rotation_size(10_000, interval=30, period=300, floor=100) == 1000
    assert rotation_size(50, interval=30, period=300, floor=100) == 50
    assert rotation_size(500, interval=30, period=300, floor=100) == 100
    assert rotation_size(10_000, interval=30, period=0) == 10_000


async def test_every_steady_instance_is_observed_within_the_period_plus_two_ticks(
    pool_db_url: str, stub: tuple[Services, str]
) -> None:
    services, url = stub
    settings = settings_for(pool_db_url, url)
    async with pool_runner(settings) as runner:  # type: ignore[arg-type]
        idle = await add_fleet_instances(runner.ctx.sessionmaker, services.fleet, 24)
        claimed = await add_fleet_instances(runner.ctx.sessionmaker, services.fleet, 6, status="claimed")
        steady = set(idle) | set(claimed)
        # 30 steady over a 60 s period with 10 s ticks: 5 a tick, so each within 6 ticks.
        per_tick, window = math.ceil(30 * 10 / 60), math.ceil(60 / 10)
        seen_at: dict[str, list[int]] = {i: [] for i in steady}
        for tick in range(3 * window):
            result = await runner.run_once()
            # Nothing changes but the deploy status each row records at its first observation.
            assert result is not None and result.error is None and set(result.actions) <= {"probe"}
            asked = services.observed(services.requests[-1])
            # Never the whole fleet: the rotation's slice, and the platform asked about none of it.
            assert len(asked) == per_tick and services.requests[-1].platform_ids == []
            for i in asked:
                seen_at[i].append(tick)
        for i, ticks in seen_at.items():
            # Observed at least once in every window of `ceil(P / I)` ticks: within P + 2·I.
            gaps = [b - a for a, b in zip([-1, *ticks], [*ticks, 3 * window], strict=True)]
            assert max(gaps) <= window, (i, ticks)
        # The stamps that order the rotation are the observations themselves.
        assert all(r.last_probe_at is not None for r in (await rows(runner)).values())


async def test_an_instance_not_observed_keeps_its_status_until_its_turn_then_is_watched(
    pool_db_url: str, stub: tuple[Services, str]
) -> None:
    services, url = stub
    settings = settings_for(pool_db_url, url, failed_probes_for_death=2)
    async with pool_runner(settings) as runner:  # type: ignore[arg-type]
        idle = await add_fleet_instances(runner.ctx.sessionmaker, services.fleet, 12)
        victim = idle[-1]
        services.unhealthy.add(victim)
        for _ in range(6):
            await runner.run_once()
            if victim in services.observed(services.requests[-1]):
                break
        else:
            raise AssertionError("the rotation never reached the victim")
        after = await rows(runner)
        assert after[victim].status == "idle" and after[victim].failed_probes == 1
        # One failed probe: watched from now on, platform included, every tick, until dead.
        await runner.run_once()
        assert victim in (services.requests[-1].platform_ids or [])
        assert victim not in await rows(runner)


async def test_a_missed_event_is_caught_by_the_listing_and_observed_at_the_next_tick(
    pool_db_url: str, stub: tuple[Services, str]
) -> None:
    services, url = stub
    # A rotation too slow to reach it: only the listing can find the crash.
    settings = settings_for(pool_db_url, url, observe_rotation_seconds=10_000)
    async with pool_runner(settings) as runner:  # type: ignore[arg-type]
        idle = await add_fleet_instances(runner.ctx.sessionmaker, services.fleet, 20)
        assert await runner.list_once() == set()  # the first listing is due at once
        crashed = idle[7]
        services.platform[crashed] = "crashed"  # its deploy event was lost
        await runner.run_once()
        assert crashed in await rows(runner)
        # Not due again before the interval: no listing, nothing marked.
        assert await runner.list_once() is None
        runner.ctx.listing.at = (runner.ctx.listing.at or 0) - settings.listing_interval_seconds  # type: ignore[attr-defined]
        assert await runner.list_once() == {crashed}
        await runner.run_once()
        request = services.requests[-1]
        assert crashed in (request.platform_ids or []) and crashed not in await rows(runner)


def test_listings_are_paced_by_their_cost_within_the_hourly_allowance() -> None:
    # 10,000 per-instance: a listing is 20 pages of projects + 200 batches = 220 calls.
    every = listing.interval(220, every=300, calls_per_hour=2500)
    assert every == pytest.approx(316.8)
    # With a steady tick's 2 calls every 30 s, the hour stays within half of Railway's 10,000.
    per_hour = 2 * 3600 / 30 + 220 * 3600 / every
    assert per_hour <= 5000
    # A missed event is seen within a listing interval, the listing itself and a tick.
    assert every + 30 + 30 < 7 * 60
    # Small fleets are listed at the configured interval.
    assert listing.interval(2, every=300, calls_per_hour=2500) == 300


async def test_an_instance_marked_to_observe_now_is_observed_with_the_platform_first(
    pool_db_url: str, stub: tuple[Services, str]
) -> None:
    services, url = stub
    settings = settings_for(pool_db_url, url, observe_rotation_seconds=10_000)
    async with pool_runner(settings) as runner:  # type: ignore[arg-type]
        idle = await add_fleet_instances(runner.ctx.sessionmaker, services.fleet, 10)
        marked = idle[4]
        runner.ctx.observe_soon([marked])
        services.down = True
        await runner.run_once()
        # services did not answer: still marked for the next tick.
        assert runner.ctx.observe_now == {marked}
        services.down = False
        services.platform[marked] = "sleeping"
        await runner.run_once()
        assert marked in (services.requests[-1].platform_ids or [])
        assert (await rows(runner))[marked].status == "sleeping" and not runner.ctx.observe_now
