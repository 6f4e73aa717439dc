from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from services.config import Settings
from services.tools.registry import TOOLS
from shared.auth import hash_token
from shared.errors import error_body
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient, Rows, create_and_wait

IID = "inst00000001"


def create_body(instance_id: str = IID, **extra: Any) -> dict[str, Any]:
    return {"instanceId": instance_id, "name": f"agent-{instance_id}", "tools": ["echo"], **extra}


async def test_create_is_accepted_at_once_made_by_a_worker_and_a_repeat_answers_its_phase(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.hold_create = asyncio.Event()
    async with app_client(make_settings(platform="memory")) as api:
        first = await api.post("/create-instance", json=create_body(), headers=AUTH)
        assert first.status_code == 202, first.text
        await asyncio.wait_for(memory_platform.create_started.wait(), 10)
        during = await api.post("/create-instance", json=create_body(), headers=AUTH)
        memory_platform.hold_create.set()
        done = await create_and_wait(api, create_body())

    token = first.json()["gatewayToken"]
    assert token.startswith("pool_gw_")
    assert first.headers["cache-control"] == "no-store"
    assert {k: first.json()[k] for k in ("instanceId", "phase", "url", "deployStatus", "error")} == {
        "instanceId": IID,
        "phase": "queued",
        "url": None,
        "deployStatus": None,
        "error": None,
    }
    # A repeat never creates again and never hands the token out again.
    assert (during.status_code, during.json()["phase"], during.json()["gatewayToken"]) == (
        202,
        "creating",
        None,
    )
    assert (done["phase"], done["deployStatus"], done["gatewayToken"]) == ("deploying", "deploying", None)
    assert done["tools"] == [
        {"toolId": "echo", "resourceId": f"echo-{IID}-1", "envKey": "ECHO_API_KEY", "status": "active"}
    ]
    assert len(memory_platform.created) == 1
    assert echo.provision_calls == 1

    infra, ledger = await db_rows()
    assert infra[0].gateway_token_hash == hash_token(token)
    assert (infra[0].state, infra[0].create_secret, infra[0].lease_until) == ("active", None, None)
    assert infra[0].platform_ref["service_id"] == f"svc-{IID}"
    secret = memory_platform.created[0].env["ECHO_API_KEY"]
    stored = " ".join(str(v) for row in [*infra, *ledger] for v in vars(row).values())
    assert token not in stored and secret not in stored


async def test_the_callers_gateway_token_goes_to_the_instance_and_is_never_handed_back(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    token = "pool_gw_" + "x" * 43
    async with app_client(make_settings(platform="memory")) as api:
        done = await create_and_wait(api, create_body(gatewayToken=token))
        other = await api.post(
            "/create-instance", json=create_body(gatewayToken="pool_gw_" + "y" * 43), headers=AUTH
        )

    assert (done["phase"], done["gatewayToken"]) == ("deploying", None)
    assert memory_platform.created[0].env["GATEWAY_TOKEN"] == token
    assert other.status_code == 409
    infra, _ = await db_rows()
    assert infra[0].gateway_token_hash == hash_token(token)
    assert infra[0].create_secret is None


async def test_default_tools_apply_when_the_request_names_none_and_an_empty_list_means_none(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    """Issue 11 (12): the pool sent `tools: []` always, so SERVICES_DEFAULT_TOOLS never applied."""
    async with app_client(make_settings(platform="memory", default_tools=["echo"])) as api:
        default = await create_and_wait(api, {"instanceId": IID, "name": "a"})
        none = await create_and_wait(api, {"instanceId": "inst00000002", "name": "b", "tools": []})

    assert [t["toolId"] for t in default["tools"]] == ["echo"]
    assert none["tools"] == []
    assert echo.provision_calls == 1


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
        created = await create_and_wait(api, body)

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


async def test_a_create_a_crash_left_is_taken_again_on_start_and_finished(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.hold_create = asyncio.Event()
    settings = make_settings(platform="memory", create_lease_seconds=5)
    async with app_client(settings) as api:
        accepted = await api.post("/create-instance", json=create_body(), headers=AUTH)
        await asyncio.wait_for(memory_platform.create_started.wait(), 10)

        # Everything made so far is already committed: the row, the tool, the platform's first resource.
        infra, ledger = await db_rows()
        assert [(r.state, r.platform_ref["service_id"]) for r in infra] == [("creating", f"svc-{IID}")]
        assert [(r.tool_id, r.status, r.resource_id) for r in ledger] == [("echo", "active", f"echo-{IID}-1")]
    # The services process died here (its workers were cancelled mid-create). A new one starts:
    # once the dead worker's lease has run out, its create is taken again, its half-made platform
    # service removed, and the create finished with the tool it had.
    memory_platform.hold_create = None
    async with app_client(settings) as api:
        done = await create_and_wait(api, create_body(), timeout=30)

    token = accepted.json()["gatewayToken"]
    assert done["phase"] == "deploying"
    assert memory_platform.destroyed == [f"svc-{IID}"]
    assert list(memory_platform.live) == [f"svc-{IID}"]
    assert memory_platform.created[-1].env["GATEWAY_TOKEN"] == token
    assert echo.provision_calls == 1
    infra, _ = await db_rows()
    assert (infra[0].state, infra[0].create_attempts) == ("active", 2)


async def test_destroy_of_a_create_in_flight_cancels_it_and_nothing_is_left(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.hold_create = asyncio.Event()
    async with app_client(make_settings(platform="memory")) as api:
        assert (await api.post("/create-instance", json=create_body(), headers=AUTH)).status_code == 202
        await asyncio.wait_for(memory_platform.create_started.wait(), 10)
        destroyed = await api.delete(f"/destroy/{IID}", headers=AUTH)
        # The worker goes on to make its second resource, sees the destroy, and removes it.
        memory_platform.hold_create.set()
        for _ in range(200):
            if memory_platform.live == {}:
                break
            await asyncio.sleep(0.05)
        later = await api.post("/status/batch", json={}, headers=AUTH)

    assert destroyed.json() == {"instanceId": IID, "destroyed": True, "alreadyGone": False}
    assert memory_platform.live == {}
    assert echo.resources == {}
    assert await db_rows() == ([], [])
    assert later.json()["instances"] == {}


async def test_destroy_of_a_queued_create_cancels_it_before_anything_is_made(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.hold_create = asyncio.Event()
    async with app_client(make_settings(platform="memory", create_concurrency=1)) as api:
        await api.post("/create-instance", json=create_body(), headers=AUTH)
        await asyncio.wait_for(memory_platform.create_started.wait(), 10)
        queued = await api.post("/create-instance", json=create_body("inst00000002"), headers=AUTH)
        destroyed = await api.delete("/destroy/inst00000002", headers=AUTH)
        memory_platform.hold_create.set()
        await create_and_wait(api, create_body())

    assert queued.json()["phase"] == "queued"
    assert destroyed.json()["destroyed"] is True
    assert [spec.instance_id for spec in memory_platform.created] == [IID]
    infra, _ = await db_rows()
    assert [r.instance_id for r in infra] == [IID]


async def test_creates_are_made_in_arrival_order_by_a_bounded_number_of_workers(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    ids = [f"inst0000000{n}" for n in range(1, 6)]
    async with app_client(make_settings(platform="memory", create_concurrency=2)) as api:
        memory_platform.hold_create = asyncio.Event()
        for instance_id in ids:
            answer = await api.post("/create-instance", json=create_body(instance_id), headers=AUTH)
            assert answer.status_code == 202
        for _ in range(100):
            if len(memory_platform.created) == 2:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        in_flight = [spec.instance_id for spec in memory_platform.created]
        waiting = [
            (await api.post("/create-instance", json=create_body(i), headers=AUTH)).json()["phase"]
            for i in ids[2:]
        ]
        memory_platform.hold_create.set()
        for instance_id in ids:
            await create_and_wait(api, create_body(instance_id))

    # The oldest two are made, the later ones wait (two workers); then every one is made once.
    # (The two workers reach the platform in either order: each places its create under the lock.)
    assert sorted(in_flight) == ids[:2]
    assert waiting == ["queued"] * 3
    assert sorted(spec.instance_id for spec in memory_platform.created) == ids


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
        failed = await create_and_wait(api, create_body(tools=["echo", "echo2"]))
        batch = (await api.post("/status/batch", json={}, headers=AUTH)).json()
        infra, _ = await db_rows()
        destroyed = await api.delete(f"/destroy/{IID}", headers=AUTH)

    reason = (
        f"tool echo2 failed for instance {IID}: echo2 provision failed: "
        "echo provider refused to provision (fail_provision is set)"
    )
    assert (failed["phase"], failed["error"]) == ("failed", reason)
    seen = batch["instances"][IID]
    assert (seen["phase"], seen["error"], seen["deployStatus"], seen["health"]) == (
        "failed",
        reason,
        None,
        None,
    )
    assert [(r.state, r.create_secret) for r in infra] == [("failed", None)]
    assert (echo.provision_calls, echo.revoke_calls, echo.resources) == (1, 1, {})
    assert memory_platform.created == []
    assert destroyed.json()["destroyed"] is True
    assert await db_rows() == ([], [])


async def test_a_failing_platform_create_rolls_back_what_it_made_and_reports_why(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    memory_platform.fail_create = "projectCreate answered 503"
    async with app_client(make_settings(platform="memory")) as api:
        failed = await create_and_wait(api, create_body())

    assert failed["phase"] == "failed"
    assert failed["error"] == f"platform create failed for instance {IID}: memory: projectCreate answered 503"
    assert (memory_platform.live, echo.resources) == ({}, {})


async def test_destroy_is_idempotent_and_unknown_instances_are_already_gone(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        await create_and_wait(api, create_body())
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
        await create_and_wait(api, create_body())
        memory_platform.fail_destroy = "serviceDelete answered 503"
        failed = await api.delete(f"/destroy/{IID}", headers=AUTH)
        infra, ledger = await db_rows()
        memory_platform.fail_destroy = None
        retried = await api.delete(f"/destroy/{IID}", headers=AUTH)

    assert failed.status_code == 502
    assert (
        failed.json()["detail"] == f"platform destroy of instance {IID} on memory: serviceDelete answered 503"
    )
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
        await create_and_wait(api, create_body())
        ok = await api.post(f"/configure/{IID}", json={"variables": {"MODEL": "x"}}, headers=AUTH)
        refused = await api.post(
            f"/configure/{IID}", json={"variables": {"GATEWAY_TOKEN": "mine"}}, headers=AUTH
        )
        redeployed = await api.post(f"/redeploy/{IID}", json={"image": "runtime:2"}, headers=AUTH)

    assert ok.json() == {"instanceId": IID, "ok": True, "deployStatus": "deploying"}
    assert memory_platform.configured == [(f"svc-{IID}", {"MODEL": "x"}, False)]
    assert refused.status_code == 400
    assert refused.json() == error_body(
        "BadRequest", "variables GATEWAY_TOKEN are set by services and cannot be configured"
    )
    assert redeployed.json() == {"instanceId": IID, "ok": True, "deployStatus": "deploying"}
