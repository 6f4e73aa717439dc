"""Which idle instances a tick asks `/convos/status` (the rotation): its per-tick count, and its
stamps in the rows (`instances.runtime_checked_at`), which a new leader carries on from."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import text

from pool.config import Settings as PoolSettings
from pool.tick import runtimes
from pool.tick.context import TickContext
from pool.tick.plan import Row
from shared.schemas import HealthProbe, InstanceObservation, StatusBatch
from tests.pool.factories import make_instance
from tests.pool.tick.conftest import pool_settings, pool_state

IDS = [f"i{n:011d}" for n in range(10)]
NOW = datetime.now(UTC)
ROWS = [Row(i, "idle", NOW, NOW) for i in IDS]
# Every one of them probed healthy this tick.
BATCH = StatusBatch(
    observed_at=NOW,
    instances={
        i: InstanceObservation(
            instance_id=i, url=None, deploy_status="running", health=HealthProbe(ok=True), created_at=NOW
        )
        for i in IDS
    },
)


def settings(pool_db_url: str, **overrides: object) -> PoolSettings:
    # 10 idle, 30 s ticks, a 150 s period: 2 asked per tick.
    values = {
        "tick_interval_seconds": 30,
        "idle_runtime_check_seconds": 150,
        "idle_runtime_checks_per_tick": 100,
    }
    return pool_settings(pool_db_url, "http://127.0.0.1:9", **(values | overrides))


async def add_rows(ctx: TickContext) -> None:
    async with ctx.sessionmaker.begin() as session:
        for i in IDS:
            await make_instance(session, id=i)


async def asked(ctx: TickContext) -> list[str]:
    ask, not_asked = await runtimes.select(ctx, ROWS, BATCH)
    assert sorted(ask + not_asked) == IDS
    return ask


# Stamps `ago` seconds old, on the database's clock as the rotation's own.
_STAMP = text("UPDATE instances SET runtime_checked_at = now() - make_interval(secs => :ago) WHERE id = :id")


async def checked_ago(ctx: TickContext, seconds: Mapping[str, float]) -> None:
    async with ctx.sessionmaker.begin() as session:
        for i, ago in seconds.items():
            await session.execute(_STAMP, {"ago": ago, "id": i})


def test_the_per_tick_count_spreads_every_idle_instance_over_the_period_within_the_cap() -> None:
    assert runtimes.per_tick(10, period=150, interval=30, cap=100) == 2
    assert runtimes.per_tick(10_000, period=600, interval=30, cap=200) == 200


async def test_every_idle_instance_is_asked_every_tick_when_the_period_is_zero(pool_db_url: str) -> None:
    async with pool_state(settings(pool_db_url, idle_runtime_check_seconds=0)) as state:
        ctx = state["tick"].ctx
        await add_rows(ctx)
        assert await asked(ctx) == IDS
        assert await asked(ctx) == IDS


async def test_the_least_recently_asked_go_first_and_none_again_within_the_period(pool_db_url: str) -> None:
    async with pool_state(settings(pool_db_url)) as state:
        ctx = state["tick"].ctx
        await add_rows(ctx)
        # Never asked before any; then the oldest stamp.
        await checked_ago(ctx, {i: 10 for i in IDS[:2]})
        assert await asked(ctx) == IDS[2:4]
        assert await asked(ctx) == IDS[4:6]
        await checked_ago(ctx, {i: 100 for i in IDS} | {IDS[7]: 170, IDS[4]: 200})
        assert await asked(ctx) == [IDS[4], IDS[7]]
        # Asked within the period: nobody is due.
        assert await asked(ctx) == []


async def test_a_new_leader_carries_on_the_rotation_of_the_last(pool_db_url: str) -> None:
    async with pool_state(settings(pool_db_url)) as state:
        await add_rows(state["tick"].ctx)
        first = await asked(state["tick"].ctx)
    async with pool_state(settings(pool_db_url)) as state:
        second = await asked(state["tick"].ctx)
    assert first == IDS[:2] and second == IDS[2:4]
