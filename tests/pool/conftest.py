"""Pool test fixtures: settings on a fresh database, the app in-process with its lifespan, a fake
fleet of instances served over real HTTP, and a small stand-in for services' destroy route."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import Receive, Scope, Send

from pool.config import Settings
from pool.main import create_app
from shared.db import make_engine, make_sessionmaker
from shared.errors import error_body
from tests.fakes.fleet import FakeFleet, create_fleet_app
from tests.pool.factories import ENCRYPTION_KEY
from tests.support import serve

API_KEY = "test-pool-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class FakeServices:
    """Only what operator tests need of services: destroy, recorded, and a switch to make it fail."""

    destroyed: list[str] = field(default_factory=list)
    fail: bool = False
    url: str = ""


def create_fake_services_app(fake: FakeServices) -> FastAPI:
    app = FastAPI()

    @app.delete("/destroy/{instance_id}")
    async def destroy(instance_id: str) -> JSONResponse:
        if fake.fail:
            return JSONResponse(error_body("PermanentError", "platform refused"), status_code=502)
        fake.destroyed.append(instance_id)
        return JSONResponse({"instanceId": instance_id, "destroyed": True, "alreadyGone": False})

    @app.get("/registry")
    async def registry() -> JSONResponse:
        # What services can provision (the template API checks a template's tools against it).
        tools = [{"id": "openrouter", "mode": "per_instance", "envKey": "OPENROUTER_API_KEY"}]
        return JSONResponse({"tools": tools, "platform": "local"})

    return app


@pytest.fixture
async def fleet() -> AsyncIterator[FakeFleet]:
    fake = FakeFleet()
    async with serve(create_fleet_app(fake)) as url:
        fake.base_url = url
        yield fake


@pytest.fixture
async def fake_services() -> AsyncIterator[FakeServices]:
    fake = FakeServices()
    async with serve(create_fake_services_app(fake)) as url:
        fake.url = url
        yield fake


@pytest.fixture
def make_settings(pool_db_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": pool_db_url,
            "api_key": API_KEY,
            "services_api_key": "test-services-key",
            "encryption_key": ENCRYPTION_KEY,
            "tick_enabled": False,
            "claim_provision_timeout_seconds": 5.0,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
async def sessionmaker(pool_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(pool_db_url, pool_size=5)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan state, as uvicorn would hand it to each request."""
    async with app.router.lifespan_context(app) as state:

        async def with_state(scope: Scope, receive: Receive, send: Send) -> None:
            scope["state"] = dict(state or {})
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://pool", timeout=60) as client:
            yield client


@pytest.fixture
async def client(
    make_settings: Callable[..., Settings], fake_services: FakeServices
) -> AsyncIterator[httpx.AsyncClient]:
    async with running(create_app(make_settings(services_url=fake_services.url))) as c:
        yield c
