from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from services.config import Settings
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import API_KEY, AUTH, AppClient, create_and_wait


async def test_health_and_version_are_served(
    make_settings: Callable[..., Settings], app_client: AppClient
) -> None:
    async with app_client(make_settings()) as api:
        health = await api.get("/healthz")
        version = await api.get("/version")

    assert health.json() == {"ok": True, "app": "services", "database": "ok"}
    assert version.json()["app"] == "services"


async def test_one_log_line_per_request_and_no_secret_in_any_log_line(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    echo: EchoTool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    async with app_client(make_settings(platform="memory")) as api:
        created = await create_and_wait(api, {"instanceId": "logs00000001", "name": "a", "tools": ["echo"]})
        during_create = caplog.text
        caplog.clear()  # the create's polls aside: from here, one line per request
        await api.post("/create-instance", json={"instanceId": "logs00000002", "name": "b"}, headers=AUTH)
        await api.get("/registry", headers={"Authorization": "Bearer wrong-key"})

    env = memory_platform.created[0].env
    secrets = [API_KEY, created["gatewayToken"], env["INSTANCE_SERVICES_TOKEN"], env["ECHO_API_KEY"]]
    messages = [record.getMessage() for record in caplog.records]
    request_lines = [m for m in messages if m.startswith("http.request")]
    assert len(request_lines) == 2
    assert request_lines[0].startswith("http.request method=POST path=/create-instance status=202 ms=")
    assert request_lines[1].startswith("http.request method=GET path=/registry status=401 ms=")
    assert "instance.create.queued instance_id=logs00000002" in " ".join(messages)
    for secret in secrets:
        assert secret not in caplog.text and secret not in during_create
