from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.config import Settings
from services.deps import State
from services.events.router import router as events_router
from services.events.subscribe import subscribe_all
from services.inbound.router import router as inbound_router
from services.inbound.service import InboundCounters
from services.instances.router import router as instances_router
from services.instances.worker import CreateWorkers
from services.ledger.router import router as ledger_router
from services.platforms.registry import build_platforms
from services.platforms.router import router as platforms_router
from services.pooled.router import router as pooled_router
from services.proxy.router import router as proxy_router
from services.status.router import router as status_router
from services.sweep.loop import sweep_forever
from services.sweep.router import router as sweep_router
from services.tools.base import ToolContext
from services.tools.registry import build_tools
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker
from shared.edge import BodyTooLarge, docs_routes
from shared.errors import install_error_handlers
from shared.health import health_router
from shared.logging import get_logger, register_secret

log = get_logger("services.http")


def loggable_path(path: str) -> str:
    """The path without a webhook's secret: `/webhooks/<provider>/<secret>` logs as `.../***`."""
    parts = path.split("/")
    if len(parts) >= 4 and parts[1] == "webhooks":
        return "/".join([*parts[:3], "***"])
    return path


class RequestLogMiddleware:
    """One line per request: method, path, status, duration. Never headers or bodies."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            log.info(
                "http.request",
                method=scope["method"],
                path=loggable_path(scope["path"]),
                status=status,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )


def create_app(settings: Settings) -> FastAPI:
    register_secret(settings.api_key)
    register_secret(settings.encryption_key)
    register_secret(settings.agentmail_webhook_secret)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        engine = make_engine(settings.database_url)
        # One client for every outbound call (probes, providers); each caller sets its own timeout.
        http_client = httpx.AsyncClient(
            timeout=settings.probe_timeout_seconds,
            limits=httpx.Limits(max_connections=max(100, settings.probe_concurrency * 2)),
        )
        platforms = build_platforms(settings, http_client)
        sessionmaker = make_sessionmaker(engine)
        box = SecretBox(settings.encryption_key)
        # Tools share the app's database pool and HTTP client: they open none of their own.
        tools = build_tools(ToolContext(settings, http_client, sessionmaker, box))
        # Make the creates the route accepts (and finish what a crash left), without a request.
        workers = CreateWorkers(sessionmaker, platforms=platforms, tools=tools, box=box, settings=settings)
        workers.start()
        sweeper = None
        if settings.sweep_interval_seconds > 0:
            sweeper = asyncio.create_task(
                sweep_forever(
                    sessionmaker, tools=tools, platforms=platforms, settings=settings, http=http_client
                )
            )
        # Deploy events: the platforms' rules and the catch-up, in the background (start-up never waits).
        subscriber = asyncio.create_task(subscribe_all(sessionmaker, http_client, settings, platforms))
        try:
            yield State(
                settings=settings,
                engine=engine,
                sessionmaker=sessionmaker,
                http_client=http_client,
                platforms=platforms,
                tools=tools,
                box=box,
                create_workers=workers,
            )
        finally:
            await workers.stop()
            subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await subscriber
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            await platforms.aclose()
            await http_client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="warmpool services", lifespan=lifespan, **docs_routes(settings.environment, settings.api_docs)
    )
    install_error_handlers(app)
    # Added last, so outermost: a body over the limit is refused before anything else runs.
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(BodyTooLarge, max_bytes=settings.max_body_bytes)
    app.include_router(health_router("services"))
    app.include_router(instances_router)
    app.include_router(status_router)
    app.include_router(ledger_router)
    app.include_router(sweep_router)
    app.include_router(pooled_router)
    app.include_router(platforms_router)
    app.include_router(proxy_router)
    app.include_router(inbound_router)
    app.include_router(events_router)
    # What the vendors' webhooks delivered and refused, in this process (GET /webhooks/counts).
    app.state.inbound_counters = InboundCounters()
    return app
