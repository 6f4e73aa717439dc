"""Fixtures for services tests: settings on a fresh database, the app with its lifespan running,
and a guard that no runtime process outlives its test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from starlette.types import Receive, Scope, Send

from services.config import Settings
from services.main import create_app
from services.models import InstanceInfra, InstanceService
from services.platforms.registry import PLATFORMS
from services.tools.registry import TOOLS
from shared.db import make_engine, make_sessionmaker
from tests.fakes.echo import EchoTool
from tests.fakes.platform import MemoryPlatform

API_KEY = "test-services-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

AppClient = Callable[[Settings], contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "instances"


@pytest.fixture
def make_settings(services_db_url: str, data_dir: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": services_db_url,
            "api_key": API_KEY,
            "encryption_key": "test-encryption-key",
            "local_data_dir": str(data_dir),
            "probe_timeout_seconds": 1.0,
            "local_stop_grace_seconds": 3.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan state, as uvicorn would hand it to each request."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://services") as client:
            yield client


@pytest.fixture
def app_client() -> AppClient:
    def open_client(settings: Settings) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
        return running(create_app(settings))

    return open_client


def runtime_processes(data_dir: Path) -> list[psutil.Process]:
    """Live runtime processes recorded under `data_dir` (by pid and create time, so never a stranger)."""
    found = []
    for record in data_dir.glob("*/process.json"):
        info = json.loads(record.read_text())
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(info["pid"])
            if abs(proc.create_time() - info["create_time"]) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


@pytest.fixture(autouse=True)
def no_leftover_runtimes(data_dir: Path) -> Iterator[None]:
    yield
    for proc in runtime_processes(data_dir) if data_dir.exists() else []:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def memory_platform(monkeypatch: pytest.MonkeyPatch) -> MemoryPlatform:
    platform = MemoryPlatform()
    monkeypatch.setitem(PLATFORMS, "memory", lambda settings, client: platform)
    return platform


@pytest.fixture
def echo(monkeypatch: pytest.MonkeyPatch) -> EchoTool:
    tool = EchoTool()
    monkeypatch.setitem(TOOLS, "echo", lambda context: tool)
    return tool


Rows = tuple[list[InstanceInfra], list[InstanceService]]


@pytest.fixture
async def db_rows(services_db_url: str) -> AsyncIterator[Callable[[], Awaitable[Rows]]]:
    """Read both services tables as they are committed, on a connection of the test's own."""
    engine = make_engine(services_db_url, pool_size=1)
    sessionmaker = make_sessionmaker(engine)

    async def read() -> Rows:
        async with sessionmaker() as session:
            infra = list(await session.scalars(select(InstanceInfra).order_by(InstanceInfra.instance_id)))
            ledger = list(await session.scalars(select(InstanceService).order_by(InstanceService.id)))
            return infra, ledger

    yield read
    await engine.dispose()


async def create_and_wait(
    api: httpx.AsyncClient,
    body: dict[str, Any],
    *,
    url: str = "/create-instance",
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Ask for a create (202) and wait until services' workers end it (phase `deploying` or
    `failed`), asking again as any caller would: a repeat answers the current phase. The answer
    of the end, with the gateway token the first answer carried (when services made it)."""
    first = await api.post(url, json=body, headers=headers or AUTH)
    assert first.status_code == 202, first.text
    answer: dict[str, Any] = first.json()
    token = answer.get("gatewayToken")
    deadline = asyncio.get_running_loop().time() + timeout
    while answer["phase"] in ("queued", "creating"):
        assert asyncio.get_running_loop().time() < deadline, (
            f"create still {answer['phase']} after {timeout}s"
        )
        await asyncio.sleep(0.05)
        again = await api.post(url, json=body, headers=headers or AUTH)
        assert again.status_code == 202, again.text
        answer = again.json()
    return {**answer, "gatewayToken": token}
