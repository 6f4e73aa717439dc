"""The periodic sweep: one run every `sweep_interval_seconds`, measured from the start of the
previous run (the first after one interval). A failed run is logged and the loop goes on.
Replicas share the work through the sweep's advisory lock, so every replica may run this loop."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.platforms.registry import Platforms
from services.sweep.service import sweep_once
from services.tools.base import ToolProvider
from shared.logging import get_logger

log = get_logger(__name__)


async def sweep_forever(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    tools: dict[str, ToolProvider],
    platforms: Platforms,
    settings: Settings,
    http: httpx.AsyncClient,
) -> None:
    interval = settings.sweep_interval_seconds
    # The first run waits one interval: a booting replica has nothing urgent to sweep.
    await asyncio.sleep(interval)
    while True:
        started = time.monotonic()
        try:
            await sweep_once(sessionmaker, tools=tools, platforms=platforms, settings=settings, http=http)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("sweep.failed", error=type(exc).__name__)
        await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
