"""Create backoff is an operator setting (POOL_CREATE_BACKOFF_*) that reaches the loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import func, select, update

from pool.config import Settings
from pool.models import TickState
from pool.tick import replenish
from pool.tick import state as tick_state
from pool.tick.context import TickContext
from tests.pool.tick.conftest import pool_settings, pool_state
from tests.support import free_port, serve

DEAD_SERVICES = f"http://127.0.0.1:{free_port()}"


@pytest.fixture
async def refusing_services() -> AsyncIterator[str]:
    """A services that refuses every create (a platform quota, a bad token): each is a failure.
    (An unreachable services is not: its creates stay reserved until it answers or the bound.)"""
    app = FastAPI()

    @app.post("/create-instance")
    async def create() -> JSONResponse:
        return JSONResponse({"error": "PermanentError", "detail": "platform refused"}, status_code=400)

    async with serve(app) as url:
        yield url


def test_the_backoff_settings_are_read_from_pool_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POOL_CREATE_BACKOFF_AFTER_FAILURES", "5")
    monkeypatch.setenv("POOL_CREATE_BACKOFF_BASE_SECONDS", "2.5")
    monkeypatch.setenv("POOL_CREATE_BACKOFF_MAX_SECONDS", "40")
    # The tick reads these from the pool's Settings as they are (TickContext.settings).
    s = Settings()
    assert (s.create_backoff_after_failures, s.create_backoff_base_seconds, s.create_backoff_max_seconds) == (
        5,
        2.5,
        40,
    )


def test_a_max_below_the_base_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match="POOL_CREATE_BACKOFF_MAX_SECONDS must be at least"):
        Settings(create_backoff_base_seconds=60, create_backoff_max_seconds=10)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_an_orphan_grace_of_zero_or_less_is_refused_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # With no grace the tick would destroy an instance services knows the moment it exists.
    monkeypatch.setenv("POOL_ORPHAN_GRACE_SECONDS", value)
    with pytest.raises(ValidationError, match="POOL_ORPHAN_GRACE_SECONDS must be greater than 0"):
        Settings()


async def backoff_seconds(ctx: TickContext) -> float | None:
    async with ctx.sessionmaker() as session:
        row = (await session.scalars(select(TickState))).one()
    if row.backoff_until is None:
        return None
    return float((row.backoff_until - datetime.now(UTC)).total_seconds())


async def test_failed_creates_back_off_by_the_configured_after_base_and_max(
    pool_db_url: str, refusing_services: str
) -> None:
    settings = pool_settings(
        pool_db_url,
        refusing_services,
        min_idle=1,
        create_backoff_after_failures=2,
        create_backoff_base_seconds=60,
        create_backoff_max_seconds=100,
    )
    async with pool_state(settings) as state:
        ctx = state["tick"].ctx
        assert await replenish.create_instances(ctx, None) == []
        assert await backoff_seconds(ctx) is None  # one failure, `after` is 2
        assert await replenish.create_instances(ctx, None) == []
        first = await backoff_seconds(ctx)
        assert first is not None and 55 < first <= 60  # base × 2^0
        # Backing off: the deficit is not even reserved. An explicit count still tries (and fails).
        assert await replenish.reserve(ctx, None) == []
        assert await replenish.create_instances(ctx, 1) == []
        second = await backoff_seconds(ctx)
        assert second is not None and 95 < second <= 100  # base × 2^1 = 120, capped at max


class _HostClockAhead(datetime):
    """This replica's wall clock 200 s ahead of the database's."""

    @classmethod
    def now(cls, tz: Any = None) -> _HostClockAhead:
        return super().now(tz or UTC) + timedelta(seconds=200)


async def test_a_host_clock_ahead_of_the_database_still_backs_off(
    pool_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = pool_settings(pool_db_url, DEAD_SERVICES, min_idle=1)
    async with pool_state(settings) as pool:
        ctx = pool["tick"].ctx
        async with ctx.sessionmaker.begin() as session:
            await tick_state.ensure(session, ctx.fleet)
            await session.execute(
                update(TickState).values(backoff_until=func.now() + func.make_interval(0, 0, 0, 0, 0, 0, 60))
            )
        monkeypatch.setattr("pool.tick.state.datetime", _HostClockAhead, raising=False)
        async with ctx.sessionmaker() as session:
            assert await tick_state.may_create(session, ctx.fleet) is False
        assert await replenish.reserve(ctx, None) == []  # no create before the backoff ends
