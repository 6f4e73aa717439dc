"""GET /instances and /instances/{id}: the ledger for operators, never a secret."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from services.config import Settings
from shared.errors import error_body
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient, create_and_wait

IID = "inst00000001"
OTHER = "inst00000002"


async def create(api: httpx.AsyncClient, instance_id: str) -> None:
    body = {"instanceId": instance_id, "name": f"agent-{instance_id}", "tools": ["echo"]}
    assert (await create_and_wait(api, body))["phase"] == "deploying"


async def test_one_instance_shows_platform_ids_and_every_ledger_entry_but_no_secret(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        await create(api, IID)
        first = f"echo-{IID}-1"
        assert (await api.delete(f"/destroy/{IID}/echo/{first}", headers=AUTH)).status_code == 200
        again = await api.post(f"/provision/{IID}/echo", headers=AUTH)
        assert again.status_code == 200, again.text
        response = await api.get(f"/instances/{IID}", headers=AUTH)

    assert response.status_code == 200, response.text
    body = response.json()
    stamps = ("createdAt", "updatedAt")
    assert {key: value for key, value in body.items() if key not in (*stamps, "tools")} == {
        "instanceId": IID,
        "name": f"agent-{IID}",
        "platform": "memory",
        "provider": "memory",
        "state": "active",
        "url": None,
        "deployStatus": "deploying",
        "runtimeImage": "ghcr.io/warmpool/runtime:latest",
        "platformRef": {"service_id": f"svc-{IID}", "domain": f"{IID}.memory.test"},
        "lastError": None,
    }
    assert [{k: v for k, v in tool.items() if k not in (*stamps, "id")} for tool in body["tools"]] == [
        {
            "toolId": "echo",
            "resourceId": first,
            "envKey": "ECHO_API_KEY",
            "status": "destroyed",
            "lastError": None,
        },
        {
            "toolId": "echo",
            "resourceId": f"echo-{IID}-2",
            "envKey": "ECHO_API_KEY",
            "status": "active",
            "lastError": None,
        },
    ]
    secrets = [
        spec.env[key]
        for spec in memory_platform.created
        for key in spec.env
        if key.endswith(("KEY", "TOKEN"))
    ]
    secrets += [secret for _, secret in echo.resources.values()]
    assert secrets and not any(secret in response.text for secret in secrets)
    assert "Hash" not in response.text and "envValue" not in response.text


async def test_the_list_pages_by_id_and_filters_by_state(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        await create(api, OTHER)
        await create(api, IID)
        first = await api.get("/instances", params={"limit": 1}, headers=AUTH)
        second = await api.get("/instances", params={"limit": 1, "after": IID}, headers=AUTH)
        creating = await api.get("/instances", params={"state": "creating"}, headers=AUTH)

    assert first.status_code == 200, first.text
    assert [i["instanceId"] for i in first.json()["instances"]] == [IID]
    assert first.json()["nextAfter"] == IID
    assert [i["instanceId"] for i in second.json()["instances"]] == [OTHER]
    assert second.json()["nextAfter"] is None
    assert [t["resourceId"] for t in second.json()["instances"][0]["tools"]] == [f"echo-{OTHER}-1"]
    assert creating.json() == {"instances": [], "nextAfter": None}


async def test_unknown_bad_and_unauthorised_requests_get_json_4xx(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        await create(api, IID)
        instance_token = memory_platform.created[0].env["INSTANCE_SERVICES_TOKEN"]
        unknown = await api.get("/instances/zzzzzzzzzzzz", headers=AUTH)
        malformed = await api.get("/instances/NOT-AN-ID", headers=AUTH)
        bad_state = await api.get("/instances", params={"state": "gone"}, headers=AUTH)
        too_many = await api.get("/instances", params={"limit": 5000}, headers=AUTH)
        as_instance = await api.get(
            f"/instances/{IID}", headers={"Authorization": f"Bearer {instance_token}"}
        )
        anonymous = await api.get("/instances")

    assert (unknown.status_code, unknown.json()) == (
        404,
        error_body("NotFound", "instance zzzzzzzzzzzz not found"),
    )
    assert [r.status_code for r in (malformed, bad_state, too_many)] == [422, 422, 422]
    assert (as_instance.status_code, as_instance.json()["kind"]) == (401, "Unauthorized")
    assert anonymous.status_code == 401
