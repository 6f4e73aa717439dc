"""One observation of the fleet for the pool's tick: deploy status from the platform in one
`status_many` call, plus a `/pool/health` probe per instance.

Probes run with bounded concurrency, and each is capped by its own timeout, so one hung instance
costs at most that timeout. A platform failure is reported (`platformOk: false`, deploy statuses
null, so the pool changes nothing on that basis), never turned into a 5xx.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.instances import service as instances_service
from services.models import InstanceInfra
from services.platforms.base import FleetSnapshot, Platform
from shared.logging import get_logger
from shared.schemas import (
    DEPLOY_FAILED,
    DEPLOY_GONE,
    HealthProbe,
    InstanceObservation,
    PlatformOrphan,
    StatusBatch,
    StatusBatchRequest,
)

log = get_logger("services.status")

# Probing these tells nothing (or, for SLEEPING, would wake the instance up).
NOT_PROBED = DEPLOY_FAILED | DEPLOY_GONE | {"SLEEPING"}


async def probe_health(client: httpx.AsyncClient, url: str, timeout: float) -> HealthProbe:
    started = time.perf_counter()

    def elapsed() -> float:
        return round((time.perf_counter() - started) * 1000, 1)

    try:
        # The outer cap covers everything, including waiting for a pooled connection.
        async with asyncio.timeout(timeout):
            response = await client.get(f"{url.rstrip('/')}/pool/health", timeout=timeout)
    except (TimeoutError, httpx.TimeoutException):
        return HealthProbe(ok=False, error=f"timed out after {timeout}s", elapsed_ms=elapsed())
    except httpx.HTTPError as exc:
        return HealthProbe(ok=False, error=type(exc).__name__, elapsed_ms=elapsed())
    ready: bool | None = None
    try:
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("ready"), bool):
            ready = body["ready"]
    except ValueError:
        pass
    return HealthProbe(
        ok=response.status_code == 200 and ready is True,
        status_code=response.status_code,
        ready=ready,
        elapsed_ms=elapsed(),
    )


async def _probe_all(
    client: httpx.AsyncClient, urls: dict[str, str], *, concurrency: int, timeout: float
) -> dict[str, HealthProbe]:
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(url: str) -> HealthProbe:
        async with gate:
            return await probe_health(client, url, timeout)

    ids = list(urls)
    results = await asyncio.gather(*(one(urls[i]) for i in ids))
    return dict(zip(ids, results, strict=True))


async def _observe_platform(
    platform: Platform, rows: list[InstanceInfra]
) -> tuple[FleetSnapshot | None, str | None]:
    refs = {
        row.instance_id: ref
        for row in rows
        if instances_service.has_platform_resources(ref := instances_service.ref_of(row))
    }
    try:
        return await platform.status_many(refs), None
    except Exception as exc:
        error = instances_service.describe(exc)[:500]
        log.warning("status.platform.failed", error=error)
        return None, error


async def observe_fleet(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    platform: Platform,
    http_client: httpx.AsyncClient,
    settings: Settings,
    body: StatusBatchRequest,
) -> StatusBatch:
    query = select(InstanceInfra).order_by(InstanceInfra.created_at)
    if body.instance_ids is not None:
        query = query.where(InstanceInfra.instance_id.in_(body.instance_ids))
    async with sessionmaker.begin() as session:
        rows = list(await session.scalars(query))
    known = {row.instance_id for row in rows}
    unknown = sorted(set(body.instance_ids or []) - known)

    snapshot, platform_error = await _observe_platform(platform, rows)
    states = snapshot.states if snapshot else {}
    deploy = {
        row.instance_id: (s.deploy_status if (s := states.get(row.instance_id)) else None) for row in rows
    }
    urls = {
        row.instance_id: url
        for row in rows
        if (url := (s.url if (s := states.get(row.instance_id)) and s.url else row.url))
    }
    targets = {i: u for i, u in urls.items() if deploy[i] not in NOT_PROBED}
    probes = (
        await _probe_all(
            http_client,
            targets,
            concurrency=settings.probe_concurrency,
            timeout=settings.probe_timeout_seconds,
        )
        if body.probe
        else {}
    )
    if snapshot is not None:
        await _record(sessionmaker, rows, deploy)
    # Orphans only mean something when the whole fleet was asked about.
    orphans = snapshot.orphans if snapshot and body.instance_ids is None else []
    return StatusBatch(
        observed_at=datetime.now(UTC),
        instances={
            row.instance_id: InstanceObservation(
                instance_id=row.instance_id,
                url=urls.get(row.instance_id),
                deploy_status=deploy[row.instance_id],
                health=probes.get(row.instance_id),
                created_at=row.created_at,
                error=row.last_error,
            )
            for row in rows
        },
        unknown=unknown,
        orphans=[PlatformOrphan(ref=o.ref, name=o.name, created_at=o.created_at) for o in orphans],
        platform_ok=snapshot is not None,
        platform_error=platform_error,
    )


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession], rows: list[InstanceInfra], deploy: dict[str, str | None]
) -> None:
    changed = [
        {"instance_id": row.instance_id, "deploy_status": deploy[row.instance_id]}
        for row in rows
        if deploy[row.instance_id] is not None and deploy[row.instance_id] != row.deploy_status
    ]
    if not changed:
        return
    async with sessionmaker.begin() as session:
        await session.execute(update(InstanceInfra), changed)
