"""Bad input and faults: every one gets a clear 4xx (or a 502 naming what failed), never a 500."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.config import Settings
from shared.errors import error_body
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient, Rows, create_and_wait

IID = "inst00000001"
OPERATOR_ROUTES = [
    ("POST", "/create-instance", {"instanceId": IID, "name": "a"}),
    ("DELETE", f"/destroy/{IID}", None),
    ("POST", "/status/batch", {}),
    ("POST", f"/configure/{IID}", {"variables": {"A": "b"}}),
    ("POST", f"/redeploy/{IID}", {}),
    ("GET", "/registry", None),
]
TOOL_ROUTES = [
    ("POST", f"/provision/{IID}/echo", None),
    ("DELETE", f"/destroy/{IID}/echo/echo-{IID}-1", None),
]


# Each test walks all its cases on one app and one database: a database per case would cost
# more than the cases themselves.


async def test_missing_or_wrong_bearer_is_401_on_every_route(
    make_settings: Callable[..., Settings], app_client: AppClient, memory_platform: MemoryPlatform
) -> None:
    wrong = [None, "Bearer wrong-key", f"Basic {AUTH['Authorization'][7:]}", "Bearer "]
    async with app_client(make_settings(platform="memory")) as api:
        for method, path, body in OPERATOR_ROUTES + TOOL_ROUTES:
            for authorization in wrong:
                headers = {"Authorization": authorization} if authorization else {}
                response = await api.request(method, path, json=body, headers=headers)

                assert response.status_code == 401, (method, path, authorization)
                assert response.json() == error_body("Unauthorized", "missing or invalid bearer token")
                assert response.headers["www-authenticate"] == "Bearer"
    assert memory_platform.created == [] and memory_platform.status_calls == 0


async def test_an_instance_token_is_refused_on_every_operator_route(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        await create_and_wait(api, {"instanceId": IID, "name": "a"})
        instance_token = memory_platform.created[0].env["INSTANCE_SERVICES_TOKEN"]
        for method, path, body in OPERATOR_ROUTES:
            response = await api.request(
                method, path, json=body, headers={"Authorization": f"Bearer {instance_token}"}
            )
            assert response.status_code == 401, (method, path)
    assert len(memory_platform.live) == 1 and memory_platform.configured == []
    assert memory_platform.status_calls == 0


async def test_unknown_instance_is_404(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
) -> None:
    cases = [
        ("POST", "/configure/unknown00001", {"variables": {"A": "b"}}),
        ("POST", "/redeploy/unknown00001", {}),
        ("POST", "/provision/unknown00001/echo", None),
        ("DELETE", "/destroy/unknown00001/echo/some-resource", None),
    ]
    async with app_client(make_settings(platform="memory")) as api:
        for method, path, body in cases:
            response = await api.request(method, path, json=body, headers=AUTH)

            assert response.status_code == 404, path
            assert response.json()["kind"] == "NotFound"
            assert "unknown00001" in response.json()["detail"]
    assert echo.provision_calls == 0


MALFORMED = [
    ("/create-instance", {"instanceId": "Not-Valid!", "name": "a"}, ["body", "instanceId"]),
    ("/create-instance", {"instanceId": IID}, ["body", "name"]),
    ("/create-instance", {"instanceId": IID, "name": "a", "tools": ["Bad Tool"]}, ["body", "tools", 0]),
    ("/create-instance", {"instanceId": IID, "name": "a", "env": {"lower": "x"}}, ["body", "env", "lower"]),
    (f"/configure/{IID}", {"redeploy": True}, ["body", "variables"]),
    ("/status/batch", {"instanceIds": "all"}, ["body", "instanceIds"]),
    ("/configure/TOO-LONG-AND-UPPER", {"variables": {}}, ["path", "instance_id"]),
]


async def test_a_malformed_request_is_422_naming_the_field(
    make_settings: Callable[..., Settings], app_client: AppClient, memory_platform: MemoryPlatform
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        for path, body, field in MALFORMED:
            response = await api.post(path, json=body, headers=AUTH)

            assert response.status_code == 422, (path, body)
            assert field in [error["loc"][: len(field)] for error in response.json()["detail"]], body
    assert memory_platform.created == []


async def test_an_unconfigured_tool_is_400_before_anything_is_made(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        response = await api.post(
            "/create-instance", json={"instanceId": IID, "name": "a", "tools": ["echo"]}, headers=AUTH
        )

    assert response.status_code == 400
    assert response.json() == error_body("BadRequest", "tool 'echo' is not configured (configured: none)")
    assert memory_platform.created == []
    assert await db_rows() == ([], [])


async def test_a_platform_error_during_create_removes_the_partial_resources_and_answers_502(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.fail_create = "volumeCreate answered 429: creating volumes too quickly"
    async with app_client(make_settings(platform="memory")) as api:
        failed = await create_and_wait(api, {"instanceId": IID, "name": "a", "tools": ["echo"]})

    assert (failed["phase"], failed["error"]) == (
        "failed",
        f"platform create failed for instance {IID}: memory: "
        "volumeCreate answered 429: creating volumes too quickly",
    )
    # The service the platform made before failing, and the tool, are gone again; the row stays
    # `failed` (nothing recorded on it) until a destroy, so the pool can read why.
    assert memory_platform.destroyed == [f"svc-{IID}"] and memory_platform.live == {}
    assert (echo.provision_calls, echo.revoke_calls, echo.resources) == (1, 1, {})
    infra, ledger = await db_rows()
    assert ([(r.state, r.platform_ref) for r in infra], ledger) == ([("failed", {})], [])


async def test_a_failed_rollback_keeps_the_rows_so_destroy_can_finish(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    memory_platform.fail_create = "deploy failed"
    memory_platform.fail_destroy = "serviceDelete answered 503"
    async with app_client(make_settings(platform="memory")) as api:
        failed = await create_and_wait(api, {"instanceId": IID, "name": "a"})
        infra, _ = await db_rows()
        memory_platform.fail_destroy = None
        destroyed = await api.delete(f"/destroy/{IID}", headers=AUTH)

    assert failed["phase"] == "failed"
    assert failed["error"] == (
        f"platform create failed for instance {IID}: memory: deploy failed; cleanup incomplete "
        f"(platform destroy: serviceDelete answered 503), DELETE /destroy/{IID} finishes it"
    )
    assert [(r.state, r.platform_ref["service_id"]) for r in infra] == [("failed", f"svc-{IID}")]
    assert destroyed.json()["destroyed"] is True
    assert memory_platform.live == {}
    assert await db_rows() == ([], [])
