"""What a steady-state tick asks of instances and writes: `/convos/status` only where the plan
can change something (idle on a rotation), counters and last-seen stamps set-based."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from pool.models import Instance
from shared.schemas import HealthProbe, InstanceObservation, StatusBatch
from tests.fakes.fleet import FakeFleet, create_fleet_app
from tests.pool.factories import ENCRYPTION_KEY, add_fleet_instances
from tests.pool.tick.conftest import pool_runner, pool_settings
from tests.support import serve


class Counted:
    """The fake fleet, counting `/convos/status` requests per instance."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.asked = app, Counter[str]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/convos/status"):
            self.asked[scope["path"].split("/")[2]] += 1
        await self.app(scope, receive, send)


@pytest.fixture
async def counted_fleet() -> AsyncIterator[tuple[FakeFleet, Counted]]:
    fake = FakeFleet()
    counted = Counted(create_fleet_app(fake))
    async with serve(counted) as url:  # type: ignore[arg-type]
        fake.base_url = url
        yield fake, counted


def services_app(fleet: FakeFleet, unprobed: set[str]) -> FastAPI:
    """services' answer for a healthy fleet (all SUCCESS, every probe ok but `unprobed`), and
    a teardown that removes the instance from the fleet."""
    app = FastAPI()

    @app.delete("/destroy/{instance_id}")
    async def destroy(instance_id: str) -> dict[str, object]:
        fleet.agents.pop(instance_id, None)
        return {"instanceId": instance_id, "destroyed": True, "alreadyGone": False}

    @app.post("/status/batch")
    async def batch() -> StatusBatch:
        now = datetime.now(UTC)
        return StatusBatch(
            observed_at=now,
            instances={
                i: InstanceObservation(
                    instance_id=i,
                    url=fleet.url(i),
                    deploy_status="running",
                    health=None if i in unprobed else HealthProbe(ok=True, status_code=200, ready=True),
                    created_at=now,
                )
                for i in fleet.agents
            },
            unprobed=sorted(unprobed),
        )

    return app


async def rows(runner: object) -> dict[str, Instance]:
    async with runner.ctx.sessionmaker() as session:  # type: ignore[attr-defined]
        return {r.id: r for r in await session.scalars(select(Instance))}


async def test_a_steady_tick_asks_only_starting_failing_and_rotated_idle_instances(
    pool_db_url: str, counted_fleet: tuple[FakeFleet, Counted]
) -> None:
    fleet, counted = counted_fleet
    unprobed: set[str] = set()
    async with serve(services_app(fleet, unprobed)) as services_url:
        # 6 idle over a 60 s period with 10 s ticks: one idle instance per tick.
        settings = pool_settings(
            pool_db_url,
            services_url,
            encryption_key=ENCRYPTION_KEY,
            min_idle=0,
            max_total=50,
            tick_interval_seconds=10,
            idle_runtime_check_seconds=60,
            idle_runtime_checks_per_tick=50,
        )
        async with pool_runner(settings) as runner:
            idle = await add_fleet_instances(runner.ctx.sessionmaker, fleet, 6)
            (starting,) = await add_fleet_instances(runner.ctx.sessionmaker, fleet, 1, status="starting")
            (claimed,) = await add_fleet_instances(runner.ctx.sessionmaker, fleet, 1, status="claimed")
            (failing,) = await add_fleet_instances(runner.ctx.sessionmaker, fleet, 1)
            async with runner.ctx.sessionmaker.begin() as session:
                (await session.get(Instance, failing)).failed_probes = 1  # type: ignore[union-attr]

            result = await runner.run_once()
            assert result is not None
            first = set(counted.asked)
            rotated = first - {starting, failing}
            assert {starting, failing} < first and claimed not in first and len(rotated) == 1
            after = await rows(runner)
            assert after[starting].status == "idle"
            # The failing one answered: its counter is reset by the set-based write, which also
            # records the deploy status the rows did not have yet (6 idle, claimed, failing).
            assert after[failing].failed_probes == 0 and result.actions["probe"] == 8
            assert {r.deploy_status for r in after.values()} == {"running"}
            # Healthy rows the tick left alone were stamped as seen, claimed included.
            assert all(after[i].last_healthy_at is not None for i in [*idle, claimed])

            # Next tick: another idle instance, never the same one within the period.
            counted.asked.clear()
            # A conversation we did not give it: found when its turn comes, then destroyed. Not the
            # one the first tick already asked (ids are random: which that was is chance), whose
            # turn does not come again within the period.
            tainted = next(i for i in reversed(idle) if i not in rotated)
            fleet.agents[tainted].conversation_id = "conv_out_of_band"
            seen = rotated
            for _ in range(5):
                await runner.run_once()
                assert len(set(counted.asked) & set(idle)) <= 2 and claimed not in counted.asked
                seen |= set(counted.asked) & set(idle)
                counted.asked.clear()
            assert seen == set(idle)
            assert tainted not in await rows(runner) and tainted not in fleet.agents

            # Unprobed (services' deadline) is no observation: the counter stays where it was.
            async with runner.ctx.sessionmaker.begin() as session:
                (await session.get(Instance, idle[0])).failed_probes = 1  # type: ignore[union-attr]
            unprobed.add(idle[0])
            await runner.run_once()
            assert (await rows(runner))[idle[0]].failed_probes == 1
            assert idle[0] not in counted.asked
