from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from pool import locks
from pool.activity.recorder import Recorder
from pool.callbacks.router import callbacks as callbacks_router
from pool.callbacks.router import operator as events_router
from pool.callbacks.router import proxy as proxy_router
from pool.claims import endpoints as claim_endpoints
from pool.claims.assign import provision_assigned
from pool.claims.db import ClaimsDb
from pool.claims.dispatcher import Dispatcher
from pool.claims.router import router as claims_router
from pool.claims.templates import TemplateChooser
from pool.config import Settings
from pool.dashboard.pictures import router as pictures_router
from pool.dashboard.router import router as dashboard_router
from pool.dashboard.template_pages import router as template_pages_router
from pool.deps import PoolState, lifespan_state
from pool.instance_client import InstanceClient
from pool.instances.observe import router as observe_router
from pool.instances.router import metrics_router, public_router
from pool.instances.router import router as instances_router
from pool.metrics import PoolMetrics
from pool.services_client import ServicesClient
from pool.templates.router import router as templates_router
from pool.tick.context import TickContext
from pool.tick.tick import Tick
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker
from shared.edge import BodyTooLarge, docs_routes
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.logging import get_logger, register_secret

log = get_logger("pool")


def build_state(settings: Settings, engine_pool_size: int = 20) -> PoolState:
    engine = make_engine(settings.database_url, pool_size=engine_pool_size)
    metrics = PoolMetrics()
    services = ServicesClient(
        httpx.AsyncClient(
            base_url=settings.services_url,
            headers={"Authorization": f"Bearer {settings.services_api_key}"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=50),
            # Certificates verified (httpx loads its CA bundle: ~0.7 MB of RSS) only for an https
            # services URL; plain HTTP to services beside the pool never negotiates TLS.
            verify=httpx.URL(settings.services_url).scheme == "https",
        ),
        timeout=settings.services_timeout_seconds,
        record=metrics.record_platform_call,
    )
    sessionmaker = make_sessionmaker(engine)
    instances = InstanceClient()
    box = SecretBox(settings.encryption_key)
    claims_db = ClaimsDb(settings.database_url, on_batch=metrics.record_write_batch)
    ctx = TickContext(sessionmaker, services, instances, box, settings, metrics)
    queue = Dispatcher(claims_db, metrics, lock_key=locks.claim_queue(ctx.fleet))
    # An instance that may have become idle goes to the queue's head before any newcomer.
    ctx.on_idle = queue.kick
    tick = Tick(ctx)
    recorder = Recorder(sessionmaker)
    metrics.claim_listener = recorder.claim
    return PoolState(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        claims_db=claims_db,
        templates=TemplateChooser(claims_db),
        queue=queue,
        services=services,
        instances=instances,
        box=box,
        metrics=metrics,
        recorder=recorder,
        tick=tick,
    )


def create_app(settings: Settings) -> FastAPI:
    for secret in (settings.api_key, settings.services_api_key, settings.encryption_key):
        register_secret(secret)
    register_secret(settings.admin_password)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        state = build_state(settings)
        # The tick also serves on-demand ticks, creates and rechecks (operator routes) when its
        # loops are off (POOL_TICK_ENABLED=false), so it always exists and is always stopped.
        state["tick"].start()
        state["recorder"].start()
        state["queue"].start(functools.partial(provision_assigned, state))
        log.info("pool.started", tick=settings.tick_enabled, min_idle=settings.min_idle)
        try:
            yield lifespan_state(state)
        finally:
            await state["tick"].stop()
            await state["queue"].stop(grace_seconds=settings.claim_provision_timeout_seconds)
            await state["recorder"].stop()
            await state["services"].aclose()
            await state["instances"].aclose()
            await state["claims_db"].close()
            await state["engine"].dispose()

    app = FastAPI(
        title="warmpool pool",
        lifespan=lifespan,
        # The pool exports its own Prometheus metrics and configures no OpenTelemetry: FastAPI's
        # native telemetry would still look its providers up on every request (the claim's too).
        telemetry={"tracing": False, "metrics": False, "logs": False},
        **docs_routes(settings.environment, settings.api_docs),
    )
    install_error_handlers(app)
    app.add_middleware(BodyTooLarge, max_bytes=settings.max_body_bytes)
    app.include_router(health_router("pool"))
    # The two claim routes are served by lean endpoints, ahead of their FastAPI declarations (the
    # schema): pool.claims.endpoints says why.
    app.router.routes.extend(claim_endpoints.ROUTES)
    app.include_router(claims_router)
    app.include_router(instances_router)
    app.include_router(observe_router)
    app.include_router(templates_router)
    app.include_router(metrics_router)
    app.include_router(public_router)
    app.include_router(dashboard_router)
    app.include_router(template_pages_router)
    app.include_router(pictures_router)
    app.include_router(callbacks_router)
    app.include_router(proxy_router)
    app.include_router(events_router)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        """A person who opens the pool's address is looking for the dashboard."""
        return RedirectResponse("/dashboard", status_code=307)

    return app
