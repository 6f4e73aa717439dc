from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx

from services.config import Settings
from services.models import InstanceService
from shared.db import make_engine, make_sessionmaker
from shared.errors import error_body
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient, Rows, create_and_wait

A, B = "insta0000001", "instb0000001"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def create_two(api: httpx.AsyncClient, platform: MemoryPlatform) -> tuple[str, str]:
    for instance_id in (A, B):
        done = await create_and_wait(api, {"instanceId": instance_id, "name": instance_id, "tools": []})
        assert done["phase"] == "deploying", done
    return (
        platform.created[0].env["INSTANCE_SERVICES_TOKEN"],
        platform.created[1].env["INSTANCE_SERVICES_TOKEN"],
    )


async def test_the_secret_goes_only_to_the_instance_itself(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        token_a, _ = await create_two(api, memory_platform)
        own = await api.post(f"/provision/{A}/echo", headers=bearer(token_a))
        operator = await api.post(f"/provision/{A}/echo", headers=AUTH)

    (secret,) = [s for _, s in echo.resources.values()]
    grant = {"instanceId": A, "toolId": "echo", "resourceId": f"echo-{A}-1", "envKey": "ECHO_API_KEY"}
    assert own.json() == {**grant, "envValue": secret, "status": "active"}
    assert operator.json() == {**grant, "envValue": None, "status": "active"}
    assert echo.provision_calls == 1


async def test_another_instances_token_is_403_and_nothing_is_provisioned(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        _, token_b = await create_two(api, memory_platform)
        provision = await api.post(f"/provision/{A}/echo", headers=bearer(token_b))
        await api.post(f"/provision/{A}/echo", headers=AUTH)
        destroy = await api.delete(f"/destroy/{A}/echo/echo-{A}-1", headers=bearer(token_b))
        unknown = await api.post(f"/provision/{A}/echo", headers=bearer("svc_it_not-a-real-token"))

    forbidden = error_body("Forbidden", "an instance token is valid for its own instance only")
    assert (provision.status_code, provision.json()) == (403, forbidden)
    assert (destroy.status_code, destroy.json()) == (403, forbidden)
    assert unknown.status_code == 401
    assert echo.provision_calls == 1 and echo.revoke_calls == 0
    _, ledger = await db_rows()
    assert [(r.instance_id, r.status) for r in ledger] == [(A, "active")]


async def test_twenty_concurrent_self_provisions_make_one_resource(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    echo.provision_delay = 0.3
    async with app_client(make_settings(platform="memory")) as api:
        token_a, _ = await create_two(api, memory_platform)
        responses = await asyncio.gather(
            *(api.post(f"/provision/{A}/echo", headers=bearer(token_a)) for _ in range(20))
        )

    assert {r.status_code for r in responses} == {200}
    assert len({(r.json()["resourceId"], r.json()["envValue"]) for r in responses}) == 1
    assert echo.provision_calls == 1
    assert len(echo.resources) == 1


async def test_a_row_left_creating_by_a_dead_caller_is_taken_over_at_once(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    services_db_url: str,
) -> None:
    # A live owner holds the instance's lock; a row left `creating` with the lock free has none.
    async with app_client(make_settings(platform="memory")) as api:
        await create_two(api, memory_platform)
        engine = make_engine(services_db_url, pool_size=1)
        async with make_sessionmaker(engine).begin() as session:
            session.add(InstanceService(instance_id=A, tool_id="echo", env_key="ECHO_API_KEY"))
        await engine.dispose()
        response = await asyncio.wait_for(api.post(f"/provision/{A}/echo", headers=AUTH), 5)

    assert response.json()["status"] == "active"
    assert echo.provision_calls == 1


async def test_a_failed_provision_is_recorded_and_retried_by_the_next_call(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    echo.fail_provision = True
    async with app_client(make_settings(platform="memory")) as api:
        await create_two(api, memory_platform)
        failed = await api.post(f"/provision/{A}/echo", headers=AUTH)
        _, ledger = await db_rows()
        echo.fail_provision = False
        retried = await api.post(f"/provision/{A}/echo", headers=AUTH)

    assert failed.status_code == 502
    assert [(r.status, r.last_error) for r in ledger] == [("failed", failed.json()["detail"])]
    assert retried.json()["status"] == "active"
    _, ledger = await db_rows()
    assert [(r.status, r.resource_id) for r in ledger] == [("active", f"echo-{A}-1")]


async def test_destroying_one_resource_revokes_it_once_and_again_is_success(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        token_a, _ = await create_two(api, memory_platform)
        await api.post(f"/provision/{A}/echo", headers=bearer(token_a))
        first = await api.delete(f"/destroy/{A}/echo/echo-{A}-1", headers=bearer(token_a))
        again = await api.delete(f"/destroy/{A}/echo/echo-{A}-1", headers=AUTH)
        unknown = await api.delete(f"/destroy/{A}/echo/never-made", headers=AUTH)
        fresh = await api.post(f"/provision/{A}/echo", headers=AUTH)

    destroyed = {
        "instanceId": A,
        "toolId": "echo",
        "resourceId": f"echo-{A}-1",
        "envKey": "ECHO_API_KEY",
        "envValue": None,
        "status": "destroyed",
    }
    assert first.json() == destroyed and again.json() == destroyed
    assert echo.revoke_calls == 1
    assert unknown.status_code == 404
    assert fresh.json()["resourceId"] == f"echo-{A}-2"


async def test_registry_lists_configured_tools_and_never_secrets(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        response = await api.get("/registry", headers=AUTH)

    assert response.json() == {
        "tools": [{"id": "echo", "mode": "per-instance", "envKey": "ECHO_API_KEY", "configured": True}],
        "platform": "memory",
    }
