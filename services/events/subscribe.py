"""At start-up: make each platform with events on deliver to our webhook, then catch up.

Subscribing creates the platform's rule (or finds one with the same URL, so restarts and
replicas make no duplicates). The catch-up reads the platform's delivery list back to
`SERVICES_EVENTS_CATCHUP_SECONDS` and relays each of our instances it names, once: what was
delivered while services was down is observed now rather than at the pool's next look. Both
are tried a bounded number of times with a pause; a failure only logs (the tick is the safety net).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.events import service
from services.platforms.base import DeployEvents
from services.platforms.registry import Platforms
from shared.errors import AppError
from shared.logging import get_logger

log = get_logger("services.events")

ATTEMPTS = 3
PAUSE_SECONDS = 5.0


def webhook_url(settings: Settings, provider: str, secret: str) -> str:
    return f"{settings.callback_url.rstrip('/')}/webhooks/{provider}/{secret}"


async def subscribe_all(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    platforms: Platforms,
    *,
    pause_seconds: float = PAUSE_SECONDS,
) -> dict[str, str]:
    """Per platform with events on: "created" | "exists" | "failed"; then the catch-up."""
    outcomes: dict[str, str] = {}
    started = datetime.now(UTC)
    for entry in platforms:
        platform = entry.platform
        if not isinstance(platform, DeployEvents) or not platform.event_secret:
            continue
        url = webhook_url(settings, entry.provider, platform.event_secret)
        outcomes[entry.name] = "failed"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                outcomes[entry.name] = await platform.subscribe_events(url)
                break
            except Exception as exc:  # noqa: BLE001 - retried a few times, then left to the operator
                log.warning(
                    "events.subscribe_failed", platform=entry.name, attempt=attempt, error=str(exc)[:200]
                )
                if attempt < ATTEMPTS:
                    await asyncio.sleep(pause_seconds)
        log.info("events.subscribed", platform=entry.name, rule=outcomes[entry.name])
        if settings.events_catchup_seconds > 0:
            since = started - timedelta(seconds=settings.events_catchup_seconds)
            await catch_up(sessionmaker, http, settings, entry.provider, platform, since)
    return outcomes


async def catch_up(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    provider: str,
    platform: DeployEvents,
    since: datetime,
) -> int:
    """Relay what the platform's delivery list holds since `since`; returns instances asked about."""
    try:
        events = await platform.missed_events(since)
    except Exception as exc:  # noqa: BLE001 - the tick sees what this would have
        log.warning("events.catchup_failed", provider=provider, error=str(exc)[:200])
        return 0
    asked = 0
    for event in events:
        try:
            asked += len(await service.relay(sessionmaker, http, settings, provider, event))
        except AppError as exc:
            log.warning("events.catchup_failed", provider=provider, error=exc.message)
            return asked
    log.info("events.caught_up", provider=provider, events=len(events), instances=asked)
    return asked
