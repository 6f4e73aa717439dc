"""The tick against the real services app over HTTP: local provider, real runtime processes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from pool.tick.loop import TickRunner
from tests.pool.tick.conftest import Services, statuses
from tests.support import serve

pytestmark = pytest.mark.slow
MakeRunner = Callable[..., AbstractAsyncContextManager[TickRunner]]


async def until(check: Callable[[], Any], *, timeout: float = 30.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout}s (last: {value!r})")
        await asyncio.sleep(every)


async def warm(runner: TickRunner, count: int) -> dict[str, str]:
    await runner.run_once()
    await runner.ctx.settle()

    async def all_idle() -> dict[str, str] | None:
        # Creates are asynchronous: a tick reads their phase from services and promotes the made
        # ones to `starting`; the prober then promotes those that serve.
        await runner.run_once()
        await runner.probe_once()
        found = await statuses(runner.ctx)
        return found if list(found.values()).count("idle") == count else None

    return dict(await until(all_idle))


async def test_warm_up_reaches_min_idle_through_real_http(
    services: Services, make_runner: MakeRunner
) -> None:
    async with make_runner(services.url, min_idle=3) as runner:
        first = await runner.run_once()
        assert first is not None and first.actions["create"] == 3
        assert sorted((await statuses(runner.ctx)).values()) == ["creating"] * 3
        found = await warm(runner, 3)
        assert sorted(found.values()) == ["idle"] * 3
        # At target: the next tick creates nothing and changes nothing.
        again = await runner.run_once()
        assert again is not None and again.actions["create"] == 0
        assert await statuses(runner.ctx) == found


async def test_crash_of_an_idle_instance_destroys_and_replaces_it(
    services: Services, make_runner: MakeRunner
) -> None:
    async with make_runner(services.url, min_idle=2) as runner:
        before = await warm(runner, 2)
        victim = sorted(before)[0]
        services.kill(victim)
        result = await runner.run_once()
        assert result is not None and result.actions["destroy_dead"] == 1 and result.actions["create"] == 1
        await runner.ctx.settle()
        after = await warm(runner, 2)
        assert victim not in after and set(before) - {victim} < set(after)
        batch = await runner.ctx.services.status_batch(timeout=60.0)
        assert victim not in batch.instances
        assert not (services.data_dir / victim).exists()


async def test_killing_services_during_ticks_changes_no_status_and_bringing_it_back_resumes(
    services_settings: Any, data_dir: Any, make_runner: MakeRunner
) -> None:
    from services.main import create_app
    from tests.support import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    async with make_runner(url, min_idle=2) as runner:
        async with serve(create_app(services_settings), port=port):
            before = await warm(runner, 2)
        # Services is down: ticks observe nothing and change nothing, counters included.
        for _ in range(3):
            down = await runner.run_once()
            assert down is not None and down.error is not None and not down.actions
        assert await statuses(runner.ctx) == before
        async with serve(create_app(services_settings), port=port):
            back = await runner.run_once()
            assert back is not None and back.error is None and not back.actions
            assert await statuses(runner.ctx) == before
