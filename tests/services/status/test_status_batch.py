from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.config import Settings
from services.status.probes import concurrency_for
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient, Rows, create_and_wait
from tests.support import serve

HEALTHY, HUNG, ASLEEP = "healthy00001", "hung00000001", "asleep000001"


@pytest.fixture
async def hung_url() -> AsyncIterator[str]:
    """A server that accepts connections and never answers: what a wedged instance looks like."""
    held: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture
async def healthy_url() -> AsyncIterator[str]:
    app = FastAPI()

    @app.get("/pool/health")
    async def health() -> JSONResponse:
        return JSONResponse({"ready": True, "version": "1", "runtime": "test"})

    async with serve(app) as url:
        yield url


async def create(api: httpx.AsyncClient, instance_id: str) -> None:
    done = await create_and_wait(api, {"instanceId": instance_id, "name": instance_id})
    assert done["phase"] == "deploying", done


async def test_one_hung_instance_costs_the_batch_no_more_than_its_timeout(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    hung_url: str,
    healthy_url: str,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.urls = {HEALTHY: healthy_url, HUNG: hung_url, ASLEEP: hung_url}
    memory_platform.statuses = {ASLEEP: "sleeping"}
    async with app_client(make_settings(platform="memory", probe_timeout_seconds=0.5)) as api:
        for instance_id in (HEALTHY, HUNG, ASLEEP):
            await create(api, instance_id)
        started = time.perf_counter()
        response = await api.post("/status/batch", json={}, headers=AUTH)
        elapsed = time.perf_counter() - started

    batch = response.json()
    assert response.status_code == 200
    assert elapsed < 1.5
    assert batch["platformOk"] is True and batch["orphans"] == []
    assert set(batch["instances"]) == {HEALTHY, HUNG, ASLEEP}
    healthy, hung, asleep = (batch["instances"][i] for i in (HEALTHY, HUNG, ASLEEP))
    assert (healthy["deployStatus"], healthy["health"]["ok"], healthy["health"]["ready"]) == (
        "running",
        True,
        True,
    )
    assert (hung["deployStatus"], hung["health"]["ok"], hung["health"]["error"]) == (
        "running",
        False,
        "timed out after 0.5s",
    )
    # A sleeping instance is not probed: the probe would wake it.
    assert (asleep["deployStatus"], asleep["health"]) == ("sleeping", None)
    assert memory_platform.status_calls == 1
    infra, _ = await db_rows()
    assert {r.instance_id: r.deploy_status for r in infra} == {
        HEALTHY: "running",
        HUNG: "running",
        ASLEEP: "sleeping",
    }


async def test_a_platform_failure_is_reported_not_a_5xx_and_changes_nothing(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    healthy_url: str,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.urls = {HEALTHY: healthy_url}
    async with app_client(make_settings(platform="memory")) as api:
        await create(api, HEALTHY)
        memory_platform.fail_status = "Railway answered 429: rate limited"
        response = await api.post(
            "/status/batch", json={"instanceIds": [HEALTHY, "unknown00001"]}, headers=AUTH
        )

    batch = response.json()
    assert response.status_code == 200
    assert batch["platformOk"] is False
    assert batch["platformError"] == "memory: Railway answered 429: rate limited"
    # An id services does not know is simply absent: the pool resolves its row by that.
    assert set(batch["instances"]) == {HEALTHY}
    observed = batch["instances"][HEALTHY]
    assert observed["deployStatus"] is None and observed["health"]["ok"] is True
    # Each instance says which platform failed to answer for it, so the pool holds only those.
    assert (observed["platform"], observed["platformOk"]) == ("memory", False)
    infra, _ = await db_rows()
    assert [r.deploy_status for r in infra] == ["deploying"]


async def test_probe_false_skips_health_checks_and_ids_limit_the_batch(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    healthy_url: str,
) -> None:
    memory_platform.urls = {HEALTHY: healthy_url}
    async with app_client(make_settings(platform="memory")) as api:
        await create(api, HEALTHY)
        await create(api, HUNG)
        response = await api.post(
            "/status/batch", json={"instanceIds": [HEALTHY], "probe": False}, headers=AUTH
        )

    assert list(response.json()["instances"]) == [HEALTHY]
    assert response.json()["instances"][HEALTHY]["health"] is None


async def test_the_batch_deadline_leaves_slow_instances_unprobed_not_failed(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    hung_url: str,
    healthy_url: str,
) -> None:
    late, never = "hung00000002", "healthy00002"
    memory_platform.urls = {HUNG: hung_url, late: hung_url, never: healthy_url}
    settings = make_settings(
        platform="memory",
        probe_concurrency=1,
        probe_concurrency_max=1,
        probe_timeout_seconds=0.5,
        status_deadline_seconds=0.8,
    )
    async with app_client(settings) as api:
        for instance_id in (HUNG, late, never):
            await create(api, instance_id)
        started = time.perf_counter()
        response = await api.post("/status/batch", json={}, headers=AUTH)
        elapsed = time.perf_counter() - started

    batch = response.json()
    assert response.status_code == 200
    assert elapsed < 1.5
    # One at a time: the first probe times out on its own (a failed probe); the second is cut
    # short by the deadline and the third never starts: both are unknown, not failed.
    assert batch["instances"][HUNG]["health"]["error"] == "timed out after 0.5s"
    assert batch["unprobed"] == sorted([late, never])
    assert batch["instances"][late]["health"] is None and batch["instances"][never]["health"] is None
    assert batch["platformOk"] is True


@pytest.mark.parametrize(
    ("count", "expected"), [(0, 40), (100, 40), (800, 40), (2000, 100), (10000, 400), (50000, 400)]
)
def test_probe_concurrency_grows_with_the_fleet_between_floor_and_cap(count: int, expected: int) -> None:
    assert concurrency_for(count, 40, 400) == expected
