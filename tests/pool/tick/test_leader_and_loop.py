"""Leadership (advisory lock), the loop runner's timing rules, and race-free replenish."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import select

from pool.models import TickState
from pool.tick import replenish
from pool.tick.loop import TickRunner
from pool.tick.plan import Create, Created
from shared.schemas import InstanceCreate
from tests.pool.tick.conftest import statuses
from tests.support import free_port, serve

MakeRunner = Callable[..., AbstractAsyncContextManager[TickRunner]]
DEAD_SERVICES = f"http://127.0.0.1:{free_port()}"


async def test_only_one_of_two_runners_leads_and_the_other_takes_over_when_it_stops(
    make_runner: MakeRunner,
) -> None:
    async with make_runner(DEAD_SERVICES) as first, make_runner(DEAD_SERVICES) as second:
        assert await first.run_once() is not None
        assert await second.run_once() is None
        assert await second.run_once() is None
        await first.stop()
        assert await second.run_once() is not None
        assert await first.run_once() is None


async def test_a_dead_leader_connection_hands_over_within_one_interval(
    make_runner: MakeRunner, pool_db_url: str
) -> None:
    async with make_runner(DEAD_SERVICES) as first, make_runner(DEAD_SERVICES) as second:
        first.start()
        second.start()
        await asyncio.sleep(1.0)
        leaders = [r for r in (first, second) if r.is_leader]
        assert len(leaders) == 1
        follower = second if leaders[0] is first else first
        # The leader's process "dies": PostgreSQL drops its connection and with it the lock.
        conn = await asyncpg.connect(pool_db_url)
        try:
            killed = await conn.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        assert killed == 1
        started = time.monotonic()
        while not follower.is_leader:
            # One interval is the rule; the bound leaves room for a loaded CI machine, and is still
            # far below what a lock held by a half-dead connection would cost (TCP timeouts: minutes).
            assert time.monotonic() - started < 4 * 0.5 + 1.0, "no prompt takeover by the follower"
            await asyncio.sleep(0.05)


async def test_two_started_runners_never_both_lead(make_runner: MakeRunner, pool_db_url: str) -> None:
    async with make_runner(DEAD_SERVICES) as first, make_runner(DEAD_SERVICES) as second:
        first.start()
        second.start()
        for _ in range(15):
            await asyncio.sleep(0.1)
            assert not (first.is_leader and second.is_leader)
        assert first.is_leader or second.is_leader


async def test_loop_survives_exceptions_and_counts_the_interval_from_the_start(
    make_runner: MakeRunner,
) -> None:
    async with make_runner(DEAD_SERVICES, tick_interval_seconds=0.3) as runner:
        starts: list[float] = []

        async def body() -> None:
            starts.append(time.monotonic())
            await asyncio.sleep(0.1)
            if len(starts) == 2:
                raise RuntimeError("one bad tick")

        runner.run_once = body  # type: ignore[method-assign]
        await runner.run(loops=4)
        gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
        assert len(starts) == 4
        assert all(0.28 <= gap < 0.38 for gap in gaps), gaps


async def test_overrun_starts_the_next_tick_at_once_and_ticks_never_overlap(make_runner: MakeRunner) -> None:
    async with make_runner(DEAD_SERVICES, tick_interval_seconds=0.1) as runner:
        running = 0
        overlaps = 0
        starts: list[float] = []

        async def body() -> None:
            nonlocal running, overlaps
            running += 1
            overlaps += running > 1
            starts.append(time.monotonic())
            await asyncio.sleep(0.2)
            running -= 1

        runner.run_once = body  # type: ignore[method-assign]
        await runner.run(loops=3)
        assert overlaps == 0
        assert all(0.19 <= b - a < 0.26 for a, b in zip(starts, starts[1:], strict=False))


async def test_stop_is_cooperative_and_prompt(make_runner: MakeRunner) -> None:
    async with make_runner(DEAD_SERVICES, tick_interval_seconds=30) as runner:
        runner.start()
        # Stop is cooperative: a tick in progress finishes; a loop that sleeps stops at once.
        while True:
            async with runner.ctx.sessionmaker() as session:
                if await session.scalar(select(TickState.last_tick_at)) is not None:
                    break
            await asyncio.sleep(0.05)
        assert runner.is_leader
        started = time.monotonic()
        await runner.stop()
        assert time.monotonic() - started < 1.0
        assert not runner.is_leader


async def test_concurrent_refills_from_two_replicas_never_over_create(make_runner: MakeRunner) -> None:
    async with make_runner(DEAD_SERVICES, min_idle=5) as one, make_runner(DEAD_SERVICES, min_idle=5) as two:
        reserved = await asyncio.gather(*(replenish.reserve(r.ctx, None) for r in [one, two] * 10))
        assert sum(len(ids) for ids in reserved) == 5
        assert sorted((await statuses(one.ctx)).values()) == ["creating"] * 5
        # An operator's explicit count is capped by max_total (6), in-flight creates included.
        assert len(await replenish.reserve(two.ctx, 50)) == 1


async def test_the_tick_reserves_its_planned_count_never_more_than_the_deficit_under_the_lock(
    make_runner: MakeRunner,
) -> None:
    async with make_runner(DEAD_SERVICES, min_idle=5) as runner:
        # The plan's count is what the tick creates, not the deficit recounted (5).
        assert len(await replenish.reserve(runner.ctx, Create(2))) == 2
        # Another replica's refill reserved the rest meanwhile: a stale plan creates nothing more.
        assert len(await replenish.reserve(runner.ctx, None)) == 3
        assert await replenish.reserve(runner.ctx, Create(2)) == []
        assert sorted((await statuses(runner.ctx)).values()) == ["creating"] * 5


class FlakyServices:
    def __init__(self) -> None:
        self.fail = True
        self.calls = 0


@pytest.fixture
async def flaky() -> AsyncIterator[tuple[FlakyServices, str]]:
    fake = FlakyServices()
    app = FastAPI()

    @app.post("/create-instance")
    async def create(body: InstanceCreate) -> JSONResponse:
        fake.calls += 1
        if fake.fail:
            return JSONResponse({"error": "PermanentError", "detail": "platform refused"}, status_code=400)
        return JSONResponse(
            {
                "instanceId": body.instance_id,
                "name": body.name,
                "phase": "queued",
                "url": None,
                "deployStatus": None,
                "tools": [],
            },
            status_code=202,
        )

    async with serve(app) as url:
        yield fake, url


async def test_repeated_create_failures_back_off_and_a_success_clears_it(
    make_runner: MakeRunner, flaky: tuple[FlakyServices, str]
) -> None:
    fake, url = flaky
    async with make_runner(url, min_idle=1, create_backoff_after_failures=3) as runner:
        ctx = runner.ctx
        for _ in range(3):
            assert await replenish.create_instances(ctx, None) == []
        assert fake.calls == 3
        async with ctx.sessionmaker() as session:
            row = (await session.scalars(select(TickState))).one()
        assert row.consecutive_create_failures == 3
        assert row.backoff_until is not None and row.backoff_until > datetime.now(UTC)
        assert row.last_create_error is not None and "platform refused" in row.last_create_error
        # While backing off, refills create nothing and do not call services.
        assert await replenish.create_instances(ctx, None) == []
        assert fake.calls == 3
        await asyncio.sleep(0.3)  # base 0.2 s × 2^0
        fake.fail = False
        created = await replenish.create_instances(ctx, None)
        # Accepted: the row waits for services to make it; an acceptance is no success yet (a
        # platform failing every create after accepting it must still back off).
        assert len(created) == 1 and await statuses(ctx) == {created[0]: "creating"}
        async with ctx.sessionmaker() as session:
            row = (await session.scalars(select(TickState))).one()
        assert row.consecutive_create_failures == 3
        # The tick sees it made (phase `deploying`): promoted, and the backoff ends.
        assert await replenish.promote(ctx, Created(created[0], "http://127.0.0.1:9", "deploying"))
        assert await statuses(ctx) == {created[0]: "starting"}
        async with ctx.sessionmaker() as session:
            row = (await session.scalars(select(TickState))).one()
        assert (row.consecutive_create_failures, row.backoff_until) == (0, None)
