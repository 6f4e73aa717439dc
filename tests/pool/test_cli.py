"""`poolctl` as operators run it: a separate process against a pool served over real HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from pool.models import TickState
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import API_KEY, FakeServices
from tests.pool.factories import add_fleet_instances
from tests.support import free_port, serve


@dataclass
class Result:
    code: int
    out: str
    err: str


async def poolctl(*args: str, url: str, key: str | None = API_KEY) -> Result:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOL_")}
    env.update(POOL_URL=url, COLUMNS="200")
    if key is not None:
        env["POOL_API_KEY"] = key
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pool.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture
async def pool_url(make_settings: Callable[..., Settings], fake_services: FakeServices) -> AsyncIterator[str]:
    async with serve(create_app(make_settings(services_url=fake_services.url))) as url:
        yield url


async def test_status_shows_counts_by_status(
    pool_url: str, sessionmaker: async_sessionmaker[AsyncSession], fleet: FakeFleet
) -> None:
    ids = await add_fleet_instances(sessionmaker, fleet, 2)
    result = await poolctl("status", url=pool_url)
    assert result.code == 0, result.err
    assert "Instances by status" in result.out
    idle_line = next(line for line in result.out.splitlines() if "│ idle " in line)
    assert idle_line.split("│")[2].strip() == "2"
    assert all(instance_id in result.out for instance_id in ids)


async def test_status_shows_each_platform_the_tick_recorded(
    pool_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    view = {"name": "railway-shared", "provider": "railway", "priority": 1, "capacity": 90, "inUse": 90}
    draining = {"name": "old-local", "provider": "local", "priority": 3, "capacity": 0, "inUse": 2}
    async with sessionmaker.begin() as session:
        await session.execute(
            insert(TickState).values(
                fleet="default",
                platforms=[
                    {
                        **view,
                        "creating": 1,
                        "health": "backing off",
                        "backoffUntil": "2026-11-30T12:00:30Z",
                        "consecutiveFailures": 3,
                        "lastError": "ServiceCreate: Problem processing request",
                    },
                    {**draining, "creating": 0, "health": "draining"},
                ],
                platforms_observed_at=func.now(),
            )
        )
    result = await poolctl("status", url=pool_url)
    assert result.code == 0, result.err
    assert "Platforms" in result.out
    shared = next(line for line in result.out.splitlines() if "railway-shared" in line)
    assert [cell.strip() for cell in shared.split("│")[1:7]] == [
        "railway-shared",
        "railway",
        "1",
        "90",
        "1",
        "90",
    ]
    assert "backing off" in result.out and "draining" in result.out


async def test_claim_prints_the_invite_url_and_a_qr_code(
    pool_url: str, sessionmaker: async_sessionmaker[AsyncSession], fleet: FakeFleet
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
    result = await poolctl("claim", "--name", "Cli Bot", "--instructions", "hello", url=pool_url)
    assert result.code == 0, result.err
    assert f"claimed instance {instance_id} (created)" in result.out
    invite = next(line.split("invite URL: ")[1] for line in result.out.splitlines() if "invite URL" in line)
    assert invite.startswith("http")
    assert instance_id in fleet.bound()
    # segno's compact terminal QR draws with half blocks.
    assert sum(line.count("▀") + line.count("▄") + line.count("█") for line in result.out.splitlines()) > 50


async def test_kill_and_drain_reach_services(
    pool_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    fleet: FakeFleet,
    fake_services: FakeServices,
) -> None:
    first, second = await add_fleet_instances(sessionmaker, fleet, 2)
    killed = await poolctl("kill", first, url=pool_url)
    assert killed.code == 0, killed.err
    assert f"killed {first}" in killed.out
    drained = await poolctl("drain", "1", url=pool_url)
    assert drained.code == 0, drained.err
    assert fake_services.destroyed == [first, second]


async def test_wrong_key_exits_3_with_a_clear_message(pool_url: str) -> None:
    result = await poolctl("status", url=pool_url, key="wrong-key")
    assert result.code == 3
    assert "unauthorized: the API key was refused (check POOL_API_KEY)" in result.err


async def test_claim_on_an_empty_pool_exits_4_with_retry_after(pool_url: str) -> None:
    result = await poolctl("claim", "--name", "x", "--instructions", "y", url=pool_url)
    assert result.code == 4
    assert "pool unavailable:" in result.err and "retry after" in result.err


async def test_unknown_instance_exits_1_with_the_pools_reason(pool_url: str) -> None:
    result = await poolctl("kill", "aaaaaaaaaaaa", url=pool_url)
    assert result.code == 1
    assert "404: No instance aaaaaaaaaaaa." in result.err


async def test_unreachable_pool_exits_5() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await poolctl("status", url=url)
    assert result.code == 5
    assert f"cannot reach the pool at {url}" in result.err


async def test_missing_key_exits_2() -> None:
    result = await poolctl("status", url="http://127.0.0.1:9", key=None)
    assert result.code == 2
    assert "no API key" in result.err


async def test_claim_with_wait_shows_its_place_in_the_queue_then_the_invite(
    pool_url: str, sessionmaker: async_sessionmaker[AsyncSession], fleet: FakeFleet
) -> None:
    running = asyncio.create_task(
        poolctl("claim", "--name", "Queued Bot", "--instructions", "hi", "--wait", "20", url=pool_url)
    )
    await asyncio.sleep(2.0)
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
    result = await asyncio.wait_for(running, 30)
    assert result.code == 0, result.err
    assert "queued: position 1, no estimate yet" in result.out
    assert f"claimed instance {instance_id} (created)" in result.out


async def test_claim_with_wait_that_times_out_in_the_queue_exits_4_with_the_reason(pool_url: str) -> None:
    result = await poolctl("claim", "--name", "Late Bot", "--instructions", "hi", "--wait", "1", url=pool_url)
    assert result.code == 4
    assert "No instance became free within 1 s in the queue; retry later." in result.err
