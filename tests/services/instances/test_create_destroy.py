from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from services.config import Settings
from services.tools.registry import TOOLS
from shared.auth import hash_token
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient, Rows

IID = "inst00000001"


def create_body(instance_id: str = IID, **extra: Any) -> dict[str, Any]:
    return {"instanceId": instance_id, "name": f"agent-{instance_id}", "tools": ["echo"], **extra}


async def test_create_hands_out_the_gateway_token_once_and_stores_only_hashes(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        first = await api.post("/create-instance", json=create_body(), headers=AUTH)
        again = await api.post("/create-instance", json=create_body(), headers=AUTH)

    assert first.status_code == 200, first.text
    token = first.json()["gatewayToken"]
    assert token.startswith("pool_gw_")
    expected = {
        "instanceId": IID,
        "name": f"agent-{IID}",
        "url": None,
        "deployStatus": "deploying",
        "gatewayToken": token,
        "tools": [
            {"toolId": "echo", "resourceId": f"echo-{IID}-1", "envKey": "ECHO_API_KEY", "status": "active"}
        ],
    }
    assert first.json() == expected
    assert again.status_code == 200
    assert again.json() == {**expected, "gatewayToken": None}
    assert len(memory_platform.created) == 1
    assert echo.provision_calls == 1

    infra, ledger = await db_rows()
    assert infra[0].gateway_token_hash == hash_token(token)
    assert infra[0].state == "active"
    assert infra[0].platform_ref["service_id"] == f"svc-{IID}"
    secret = memory_platform.created[0].env["ECHO_API_KEY"]
    stored = " ".join(str(v) for row in [*infra, *ledger] for v in vars(row).values())
    assert token not in stored and secret not in stored


async def test_the_instance_env_carries_the_contract_tool_keys_and_request_env(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    settings = make_settings(
        platform="memory", public_url="http://services.test", pool_url="http://pool.test"
    )
    body = create_body(env={"AGENT_MODE": "demo", "GATEWAY_TOKEN": "attempted-override"})
    async with app_client(settings) as api:
        created = (await api.post("/create-instance", json=body, headers=AUTH)).json()

    env = memory_platform.created[0].env
    (echo_secret,) = [secret for _, secret in echo.resources.values()]
    assert env.pop("INSTANCE_SERVICES_TOKEN").startswith("svc_it_")
    assert env == {
        "AGENT_MODE": "demo",
        "ECHO_API_KEY": echo_secret,
        "INSTANCE_ID": IID,
        "POOL_URL": "http://pool.test",
        "SERVICES_URL": "http://services.test",
        "GATEWAY_TOKEN": created["gatewayToken"],
    }


async def test_a_crash_mid_create_leaves_rows_that_destroy_finishes(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.hold_create = asyncio.Event()
    async with app_client(make_settings(platform="memory")) as api:
        request = asyncio.create_task(api.post("/create-instance", json=create_body(), headers=AUTH))
        await asyncio.wait_for(memory_platform.create_started.wait(), 10)

        # Everything made so far is already committed: the row, the tool, the platform's first resource.
        infra, ledger = await db_rows()
        assert [(r.state, r.platform_ref["service_id"]) for r in infra] == [("creating", f"svc-{IID}")]
        assert [(r.tool_id, r.status, r.resource_id) for r in ledger] == [("echo", "active", f"echo-{IID}-1")]

        request.cancel()  # the services process dies here
        await asyncio.gather(request, return_exceptions=True)
        retry = await api.post("/create-instance", json=create_body(), headers=AUTH)
        destroyed = await api.delete(f"/destroy/{IID}", headers=AUTH)

    assert retry.status_code == 409
    assert retry.json()["error"] == "Conflict"
    assert destroyed.json() == {"instanceId": IID, "destroyed": True, "alreadyGone": False}
    assert memory_platform.live == {}
    assert echo.resources == {}
    assert await db_rows() == ([], [])


async def test_a_failing_tool_rolls_back_the_tools_made_before_it_and_skips_the_platform(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    monkeypatch: Any,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    broken = EchoTool(name="echo2", env_key="ECHO2_API_KEY", fail_provision=True)
    monkeypatch.setitem(TOOLS, "echo2", lambda context: broken)
    async with app_client(make_settings(platform="memory")) as api:
        response = await api.post("/create-instance", json=create_body(tools=["echo", "echo2"]), headers=AUTH)

    assert response.status_code == 502
    assert response.json() == {
        "error": "UpstreamError",
        "detail": f"tool echo2 failed for instance {IID}: echo2 provision failed: "
        "echo provider refused to provision (fail_provision is set)",
    }
    assert (echo.provision_calls, echo.revoke_calls, echo.resources) == (1, 1, {})
    assert memory_platform.created == []
    assert await db_rows() == ([], [])


async def test_destroy_is_idempotent_and_unknown_instances_are_already_gone(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        await api.post("/create-instance", json=create_body(), headers=AUTH)
        first = await api.delete(f"/destroy/{IID}", headers=AUTH)
        second = await api.delete(f"/destroy/{IID}", headers=AUTH)
        never = await api.delete("/destroy/neverexisted", headers=AUTH)

    assert first.json() == {"instanceId": IID, "destroyed": True, "alreadyGone": False}
    assert second.json() == {"instanceId": IID, "destroyed": False, "alreadyGone": True}
    assert never.json() == {"instanceId": "neverexisted", "destroyed": False, "alreadyGone": True}
    assert (echo.revoke_calls, memory_platform.destroyed) == (1, [f"svc-{IID}"])


async def test_a_platform_failure_during_destroy_keeps_the_row_for_a_retry(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        await api.post("/create-instance", json=create_body(), headers=AUTH)
        memory_platform.fail_destroy = "serviceDelete answered 503"
        failed = await api.delete(f"/destroy/{IID}", headers=AUTH)
        infra, ledger = await db_rows()
        memory_platform.fail_destroy = None
        retried = await api.delete(f"/destroy/{IID}", headers=AUTH)

    assert failed.status_code == 502
    assert failed.json()["detail"] == f"platform destroy of instance {IID}: serviceDelete answered 503"
    assert [(r.state, r.last_error) for r in infra] == [("destroying", failed.json()["detail"])]
    assert [r.status for r in ledger] == ["destroyed"]
    assert retried.json()["destroyed"] is True
    assert memory_platform.live == {}
    assert await db_rows() == ([], [])


async def test_configure_passes_variables_on_but_refuses_the_ones_services_owns(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        await api.post("/create-instance", json=create_body(), headers=AUTH)
        ok = await api.post(f"/configure/{IID}", json={"variables": {"MODEL": "x"}}, headers=AUTH)
        refused = await api.post(
            f"/configure/{IID}", json={"variables": {"GATEWAY_TOKEN": "mine"}}, headers=AUTH
        )
        redeployed = await api.post(f"/redeploy/{IID}", json={"image": "runtime:2"}, headers=AUTH)

    assert ok.json() == {"instanceId": IID, "ok": True, "deployStatus": "deploying"}
    assert memory_platform.configured == [(f"svc-{IID}", {"MODEL": "x"}, False)]
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "BadRequest",
        "detail": "variables GATEWAY_TOKEN are set by services and cannot be configured",
    }
    assert redeployed.json() == {"instanceId": IID, "ok": True, "deployStatus": "deploying"}
