"""The pool's side of the asynchronous create, against the real services app over HTTP (memory
platform, echo tool): what the pool sends, and how its `creating` rows follow services' phase."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pool.models import Instance, TickState
from pool.tick import replenish
from pool.tick.loop import TickRunner
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from services.platforms.registry import PLATFORMS
from services.tools.registry import TOOLS
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform
from tests.pool.tick.conftest import SERVICES_KEY, statuses
from tests.support import serve

MakeRunner = Callable[..., AbstractAsyncContextManager[TickRunner]]
AUTH = {"Authorization": f"Bearer {SERVICES_KEY}"}


class EveryUrl(dict[str, str]):
    """The memory platform's url of each instance it makes."""

    def get(self, key: str, default: Any = None) -> str:  # type: ignore[override]
        return f"http://{key}.memory.test"


@pytest.fixture
async def memory_services(
    services_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, MemoryPlatform, EchoTool]]:
    platform, echo = MemoryPlatform(), EchoTool()
    platform.urls = EveryUrl()
    monkeypatch.setitem(PLATFORMS, "memory", lambda settings, client: platform)
    monkeypatch.setitem(TOOLS, "echo", lambda context: echo)
    settings = ServicesSettings(
        environment="test",
        database_url=services_db_url,
        api_key=SERVICES_KEY,
        encryption_key="test-encryption-key",
        platform="memory",
        default_tools=["echo"],
        sweep_interval_seconds=0,
    )
    async with serve(create_services_app(settings)) as url:
        yield url, platform, echo


async def until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.1)
    return value


async def test_services_default_tools_apply_to_the_instances_the_pool_creates(
    make_runner: MakeRunner, memory_services: tuple[str, MemoryPlatform, EchoTool]
) -> None:
    """Issue 11 (12): the pool always sent `tools: []`, so SERVICES_DEFAULT_TOOLS never applied."""
    url, platform, echo = memory_services
    async with make_runner(url, min_idle=1) as runner:
        [instance_id] = await replenish.create_instances(runner.ctx, 1)
        await until(lambda: asyncio.sleep(0, result=bool(platform.created)))
    assert platform.created[0].instance_id == instance_id
    assert "ECHO_API_KEY" in platform.created[0].env
    assert echo.provision_calls == 1


async def test_the_pool_makes_the_gateway_token_and_its_creating_row_follows_the_phase(
    make_runner: MakeRunner, memory_services: tuple[str, MemoryPlatform, EchoTool]
) -> None:
    url, platform, _ = memory_services
    platform.hold_create = asyncio.Event()
    async with make_runner(url, min_idle=1) as runner:
        ctx = runner.ctx
        [instance_id] = await replenish.create_instances(ctx, 1)
        await asyncio.wait_for(platform.create_started.wait(), 10)
        # Services is still making it: ticks and probes leave the row `creating`.
        await runner.run_once()
        await runner.probe_once()
        assert await statuses(ctx) == {instance_id: "creating"}
        platform.hold_create.set()

        async def promoted() -> bool:
            await runner.probe_once()  # follows the create's phase between ticks
            return (await statuses(ctx)) == {instance_id: "starting"}

        await until(promoted)
        async with ctx.sessionmaker() as session:
            row = (await session.scalars(select(Instance))).one()
        assert row.gateway_token_enc is not None
        # The token the pool stored is the one the instance boots with.
        assert ctx.box.decrypt(row.gateway_token_enc) == platform.created[0].env["GATEWAY_TOKEN"]
        assert row.url == f"http://{instance_id}.memory.test"


async def test_a_failed_create_removes_the_row_and_services_forgets_it(
    make_runner: MakeRunner, memory_services: tuple[str, MemoryPlatform, EchoTool]
) -> None:
    url, platform, _ = memory_services
    platform.fail_create = "quota exceeded"
    async with make_runner(url, min_idle=1) as runner, httpx.AsyncClient(base_url=url) as services:
        ctx = runner.ctx
        [instance_id] = await replenish.create_instances(ctx, 1)

        async def gone() -> bool:
            await runner.probe_once()
            return await statuses(ctx) == {}

        await until(gone)
        batch = (await services.post("/status/batch", json={}, headers=AUTH)).json()
        async with ctx.sessionmaker() as session:
            tick = (await session.scalars(select(TickState))).one()
    # Counted like any failed create (toward the backoff), with services' reason.
    assert tick.consecutive_create_failures == 1
    assert "quota exceeded" in (tick.last_create_error or "")
    # Services' failed row was destroyed by the pool; nothing is left at the platform.
    assert batch["instances"] == {}
    assert platform.live == {}
    assert [spec.instance_id for spec in platform.created] == [instance_id]
