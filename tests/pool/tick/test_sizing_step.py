"""The tick's sizing step (pool.tick.sizing) on a real database: each template's target and its
reason as the status API shows them, from its policy and the claims and refills the pool recorded;
the idle instances it hands the plan to retire (recycled past their age, drained above target)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from pool.deps import PoolState
from pool.models import Template, TemplateVersion
from pool.tick import sizing
from pool.tick.plan import Row
from pool.tick.pools import live_pools
from tests.pool.tick.conftest import pool_settings, pool_state


@pytest.fixture
async def state(pool_db_url: str) -> AsyncIterator[PoolState]:
    settings = pool_settings(
        pool_db_url, "http://127.0.0.1:9", min_idle=2, scale_down_cooldown_seconds=30.0, sizing="fixed"
    )
    async with pool_state(settings) as built:
        yield built


async def _template(state: PoolState, template_id: str, **policy: Any) -> None:
    async with state["sessionmaker"].begin() as session:
        session.add(Template(id=template_id, slug=template_id, name=template_id, owner="operator"))
        await session.flush()
        session.add(TemplateVersion(template_id=template_id, version=1, **policy))


async def _sizing_state(state: PoolState, template_id: str) -> dict[str, Any]:
    async with state["sessionmaker"]() as session:
        found = await session.scalar(select(Template.sizing_state).where(Template.id == template_id))
    assert found is not None
    return dict(found)


async def _db_now(state: PoolState) -> datetime:
    async with state["sessionmaker"]() as session:
        now = await session.scalar(text("SELECT now()"))
    assert isinstance(now, datetime)
    return now


async def _claims(state: PoolState, template_id: str, count: int) -> None:
    async with state["sessionmaker"].begin() as session:
        for i in range(count):
            await session.execute(
                text(
                    "INSERT INTO claims (id, caller, request_hash, status, template) "
                    "VALUES (:id, 'c', 'h', 'succeeded', :t)"
                ),
                {"id": f"{template_id}-{i}", "t": template_id},
            )


def _idle(i: int, template_id: str, now: datetime, *, idle_for: float = 10.0, age: float = 100.0) -> Row:
    return Row(
        f"i{i:011d}",
        "idle",
        now - timedelta(seconds=age),
        now - timedelta(seconds=idle_for),
        template_id=template_id,
    )


async def test_a_fixed_template_keeps_its_floor_and_says_so(state: PoolState) -> None:
    now = await _db_now(state)
    await sizing.resize(state["tick"].ctx, [], now)
    default = await _sizing_state(state, "default")
    assert (default["target"], default["reason"], default["sizing"]) == (2, "fixed at 2", "fixed")
    async with state["sessionmaker"]() as session:
        assert [p.min_idle for p in await live_pools(session, state["settings"])] == [2]


async def test_demand_raises_the_target_within_max_idle_with_its_reason(state: PoolState) -> None:
    await _template(state, "busy", sizing="demand", min_idle=1, max_idle=10)
    now = await _db_now(state)
    ctx = state["tick"].ctx
    await sizing.resize(ctx, [], now - timedelta(seconds=120))
    assert (await _sizing_state(state, "busy"))["target"] == 1  # no demand seen yet: the floor
    await _claims(state, "busy", 30)
    await sizing.resize(ctx, [], now)
    busy = await _sizing_state(state, "busy")
    assert busy["target"] == 10 and busy["limitedBy"] == "max_idle"
    assert "claims/min" in busy["reason"] and "held to max_idle 10" in busy["reason"]
    assert busy["claimsPerMinute"] > 3  # 30 claims in 2 min, smoothed over 5 min
    # The deployment's own template saw none of those claims.
    assert (await _sizing_state(state, "default"))["target"] == 2


async def test_a_schedule_raises_a_fixed_floor_and_a_budget_caps_demand(state: PoolState) -> None:
    await _template(state, "office", schedules=["daily 00-24 >= 4"])
    await _template(state, "thrifty", sizing="demand", min_idle=0, idle_hours_per_day=24.0)
    now = await _db_now(state)
    ctx = state["tick"].ctx
    await sizing.resize(ctx, [], now - timedelta(seconds=120))
    await _claims(state, "thrifty", 60)
    await sizing.resize(ctx, [], now)
    office = await _sizing_state(state, "office")
    assert office["target"] == 4 and "raised by schedule 'daily 00-24 >= 4'" in office["reason"]
    thrifty = await _sizing_state(state, "thrifty")
    assert thrifty["limitedBy"] == "budget" and "capped by budget 24 idle-h/day" in thrifty["reason"]


async def test_stale_idle_ones_are_recycled_and_a_surplus_drained_after_the_cooldown(
    state: PoolState,
) -> None:
    await _template(state, "aging", min_idle=1, max_idle_age_seconds=600.0)
    now = await _db_now(state)
    ctx = state["tick"].ctx
    rows = [
        _idle(1, "aging", now, idle_for=900.0, age=1000.0),
        _idle(2, "aging", now, age=500.0),
        _idle(3, "aging", now, age=400.0),
    ]
    first = await sizing.resize(ctx, rows, now)
    # Idle past its max age: replaced now. Above the target of 1: not yet, the cooldown starts.
    assert [i for i, _ in first["aging"]] == [rows[0].id]
    assert "recycled" in first["aging"][0][1]
    later = await sizing.resize(ctx, rows[1:], now + timedelta(seconds=31))
    assert [i for i, _ in later["aging"]] == [rows[1].id]
    assert later["aging"][0][1].startswith("scale-down: 2 ready or coming above the target 1")


async def test_the_peak_half_life_setting_decides_how_long_a_burst_is_remembered(
    state: PoolState, pool_db_url: str
) -> None:
    """POOL_SIZING_PEAK_HALF_LIFE_SECONDS: an hour after a burst, the default (2 h) still keeps
    instances for it; a one-minute half-life has forgotten it and is back at the floor."""
    await _template(state, "launch", sizing="demand", min_idle=1, max_idle=40)
    await sizing.resize(state["tick"].ctx, [], await _db_now(state) - timedelta(seconds=120))
    await _claims(state, "launch", 30)
    # Read after the claims were written, so the later ticks' intervals hold none of them.
    now = await _db_now(state)
    await sizing.resize(state["tick"].ctx, [], now)
    burst = (await _sizing_state(state, "launch"))["target"]
    assert burst > 5
    forgetful = pool_settings(
        pool_db_url, "http://127.0.0.1:9", min_idle=2, sizing="fixed", sizing_peak_half_life_seconds=60.0
    )
    async with pool_state(forgetful) as short:
        # The same stored state, read an hour later by each setting in turn.
        stored = await _sizing_state(state, "launch")
        later = now + timedelta(minutes=60)
        await sizing.resize(short["tick"].ctx, [], later)
        assert (await _sizing_state(short, "launch"))["target"] == 1
        async with state["sessionmaker"].begin() as session:
            await session.execute(
                text("UPDATE templates SET sizing_state = CAST(:s AS jsonb) WHERE id = 'launch'"),
                {"s": json.dumps(stored)},
            )
        await sizing.resize(state["tick"].ctx, [], later)
        remembered = (await _sizing_state(state, "launch"))["target"]
        assert 1 < remembered <= burst
