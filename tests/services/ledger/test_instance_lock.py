"""Tool operations on one instance are serialised against its destroy (issue 11, findings 8 and 11):
the ledger never loses a resource, whatever the interleaving or the hosts' clocks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.config import Settings
from services.models import InstanceInfra
from shared.db import make_engine, make_sessionmaker
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient, Rows

A = "insta0000001"


async def add_instance(services_db_url: str, instance_id: str = A) -> None:
    """An instance services made earlier (its create is not the subject here)."""
    engine = make_engine(services_db_url, pool_size=1)
    async with make_sessionmaker(engine).begin() as session:
        session.add(
            InstanceInfra(
                instance_id=instance_id,
                name=instance_id,
                provider="memory",
                platform="memory",
                state="active",
            )
        )
    await engine.dispose()


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_destroy_during_a_tool_provision_waits_for_it_and_revokes_what_it_made(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    services_db_url: str,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    echo.provision_delay = 0.5
    await add_instance(services_db_url)
    async with app_client(make_settings(platform="memory")) as api:
        provision = asyncio.create_task(api.post(f"/provision/{A}/echo", headers=AUTH))
        await until(lambda: echo.provision_calls == 1)  # its row is `creating`, the vendor is working
        destroyed = await api.delete(f"/destroy/{A}", headers=AUTH)
        provisioned = await provision

    assert provisioned.status_code == 200 and provisioned.json()["status"] == "active"
    assert destroyed.status_code == 200 and destroyed.json()["destroyed"] is True
    assert echo.resources == {}  # nothing left at the provider that no row records
    assert echo.revoke_calls == 1
    assert await db_rows() == ([], [])


async def test_a_provision_after_the_destroy_began_makes_nothing(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    services_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_instance(services_db_url)
    revoking = asyncio.Event()
    release = asyncio.Event()
    revoke = echo.revoke

    async def slow_revoke(resource_id: str, meta: dict[str, Any]) -> None:
        revoking.set()
        await release.wait()
        await revoke(resource_id, meta)

    async with app_client(make_settings(platform="memory")) as api:
        await api.post(f"/provision/{A}/echo", headers=AUTH)
        monkeypatch.setattr(echo, "revoke", slow_revoke)
        destroy = asyncio.create_task(api.delete(f"/destroy/{A}", headers=AUTH))
        await asyncio.wait_for(revoking.wait(), 5)
        again = asyncio.create_task(api.post(f"/provision/{A}/echo", headers=AUTH))
        await asyncio.sleep(0.3)
        assert not again.done()  # it waits for the destroy instead of reading a half-destroyed ledger
        release.set()
        destroyed, refused = await destroy, await again

    assert destroyed.status_code == 200
    assert refused.status_code == 404, refused.text  # the instance is gone, not re-provisioned
    assert echo.provision_calls == 1 and echo.resources == {}


class _SkewedDatetime(datetime):
    """The host's wall clock 200 s ahead of the database's."""

    @classmethod
    def now(cls, tz: Any = None) -> _SkewedDatetime:
        return super().now(tz or UTC) + timedelta(seconds=200)


async def test_a_host_clock_ahead_of_the_database_does_not_mint_a_second_key(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    services_db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Any wall-clock comparison the ledger makes sees a fresh `creating` row as minutes old.
    monkeypatch.setattr("services.ledger.service.datetime", _SkewedDatetime, raising=False)
    echo.provision_delay = 0.5
    await add_instance(services_db_url)
    async with app_client(make_settings(platform="memory")) as api:
        first = asyncio.create_task(api.post(f"/provision/{A}/echo", headers=AUTH))
        await until(lambda: echo.provision_calls == 1)
        second = await api.post(f"/provision/{A}/echo", headers=AUTH)
        answers: list[httpx.Response] = [await first, second]

    assert [a.status_code for a in answers] == [200, 200]
    assert {a.json()["resourceId"] for a in answers} == {f"echo-{A}-1"}
    assert echo.provision_calls == 1 and len(echo.resources) == 1
