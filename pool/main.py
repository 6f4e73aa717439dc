from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from pool.claims.db import ClaimsDb
from pool.claims.router import router as claims_router
from pool.config import Settings
from pool.dashboard.router import router as dashboard_router
from pool.deps import PoolState
from pool.instance_client import InstanceClient
from pool.instances.router import metrics_router
from pool.instances.router import router as instances_router
from pool.metrics import PoolMetrics
from pool.services_client import ServicesClient
from pool.tick.wiring import wire as wire_tick
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.logging import get_logger, register_secret

log = get_logger("pool")


def _no_wake() -> None:
    """Refill hook used when no tick runner is running on this replica."""


def build_state(settings: Settings, engine_pool_size: int = 20) -> PoolState:
    engine = make_engine(settings.database_url, pool_size=engine_pool_size)
    metrics = PoolMetrics()
    services = ServicesClient(
        httpx.AsyncClient(
            base_url=settings.services_url,
            headers={"Authorization": f"Bearer {settings.services_api_key}"},
            timeout=httpx.Timeout(60.0, connect=5.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
        ),
        record=metrics.record_platform_call,
    )
    return PoolState(
        settings=settings,
        engine=engine,
        sessionmaker=make_sessionmaker(engine),
        claims_db=ClaimsDb(settings.database_url),
        services=services,
        instances=InstanceClient(),
        box=SecretBox(settings.encryption_key),
        metrics=metrics,
        tick=None,
        wake=_no_wake,
        run_tick=None,
        create_instances=None,
        recheck=None,
    )


def create_app(settings: Settings) -> FastAPI:
    for secret in (settings.api_key, settings.services_api_key, settings.encryption_key):
        register_secret(secret)
    register_secret(settings.admin_password)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[PoolState]:
        state = build_state(settings)
        # The runner also serves on-demand ticks, creates and rechecks (operator routes) when
        # the periodic loop is disabled, so it always exists and is always stopped.
        runner = wire_tick(state)
        if state["tick"] is not None:
            runner.start()
        log.info("pool.started", tick=state["tick"] is not None, min_idle=settings.min_idle)
        try:
            yield state
        finally:
            await runner.stop()
            await state["services"].aclose()
            await state["instances"].aclose()
            await state["claims_db"].close()
            await state["engine"].dispose()

    app = FastAPI(title="warmpool pool", lifespan=lifespan)
    install_error_handlers(app)
    app.include_router(health_router("pool"))
    app.include_router(claims_router)
    app.include_router(instances_router)
    app.include_router(metrics_router)
    app.include_router(dashboard_router)
    return app
