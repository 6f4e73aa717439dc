"""From a platform's webhook delivery to "pool, observe this instance now".

Provider-neutral: the provider parses its payload into a `DeployEvent` (which ref data it names);
this module finds the instance whose `instance_infra.platform_ref` contains that data, on a
platform of that provider, and asks the pool (`POST /api/pool/internal/observe/{id}`, bearer
`SERVICES_API_KEY`, which the pool knows as `POOL_SERVICES_API_KEY`). Nothing here writes a status:
the pool's observation decides, so a forged, repeated or late event costs one observation.
"""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.models import InstanceInfra
from services.platforms.base import DeployEvent, DeployEvents
from services.platforms.registry import Platforms
from shared.auth import tokens_match
from shared.errors import UpstreamError
from shared.http import call_timeout
from shared.logging import get_logger

log = get_logger("services.events")

# The rows an event may concern: made (or being made) on the platform, not on their way out.
LIVE_STATES = ("creating", "active")


def receiver(platforms: Platforms, provider: str, secret: str) -> DeployEvents | None:
    """The platform of `provider` whose webhook secret is `secret` (compared in constant time, every
    candidate compared), or None: an unknown provider, events off, or a wrong secret look alike."""
    found: DeployEvents | None = None
    for entry in platforms:
        platform = entry.platform
        if entry.provider != provider or not isinstance(platform, DeployEvents):
            continue
        if tokens_match(secret, platform.event_secret) and found is None:
            found = platform
    return found


async def instances_for(
    sessionmaker: async_sessionmaker[AsyncSession], provider: str, event: DeployEvent
) -> list[str]:
    async with sessionmaker() as session:
        found = await session.scalars(
            select(InstanceInfra.instance_id)
            .where(
                InstanceInfra.provider == provider,
                InstanceInfra.state.in_(LIVE_STATES),
                InstanceInfra.platform_ref.contains(event.match),
            )
            .order_by(InstanceInfra.instance_id)
            .limit(10)
        )
        return list(found)


async def ask_pool(http: httpx.AsyncClient, settings: Settings, instance_id: str) -> str:
    """Ask the pool to observe `instance_id`; returns its answer ("started" | "queued" | "coalesced"
    | "unknown"). Raises UpstreamError when the pool cannot be told (the platform may deliver again;
    the pool's tick is the safety net either way)."""
    url = f"{settings.pool_url.rstrip('/')}/api/pool/internal/observe/{instance_id}"
    try:
        response = await http.post(
            url,
            headers={"Authorization": f"Bearer {settings.api_key}"},
            timeout=call_timeout(settings.events_pool_timeout_seconds),
        )
    except httpx.HTTPError as exc:
        raise UpstreamError(f"the pool could not be told ({type(exc).__name__})") from None
    if response.status_code == 404:
        # The pool has no such instance (removed meanwhile): nothing to observe.
        return "unknown"
    if response.status_code != 202:
        raise UpstreamError(f"the pool answered {response.status_code}")
    answer: Any = response.json()
    return str(answer.get("observation", "started")) if isinstance(answer, dict) else "started"


async def relay(
    sessionmaker: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    settings: Settings,
    provider: str,
    event: DeployEvent,
) -> dict[str, Any]:
    """Ask the pool to observe each of our instances the event names; which ones and what it said."""
    asked: dict[str, str] = {}
    for instance_id in await instances_for(sessionmaker, provider, event):
        asked[instance_id] = await ask_pool(http, settings, instance_id)
    if asked:
        log.info("event.relayed", provider=provider, kind=event.kind, instances=",".join(asked))
    return asked
