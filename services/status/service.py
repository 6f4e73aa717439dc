"""One observation of the fleet for the pool's tick: deploy status from the platform in one
`status_many` call, plus a `/pool/health` probe per instance (`services.status.probes`).

The whole batch has a deadline (`SERVICES_STATUS_DEADLINE_SECONDS`; the pool's timeout for this
call must be longer): the platform observation may use all of it, the probes use what is left.
A slow fleet yields partial health: instances not probed in time are listed in `unprobed`, which
the pool treats as no observation, never as a failure. A platform failure (or the platform still
answering at the deadline) is reported (`platformOk: false`, deploy statuses null, so the pool
changes nothing on that basis), never turned into a 5xx.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.instances import service as instances_service
from services.instances.create import phase_of
from services.models import InstanceInfra
from services.platforms.base import FleetSnapshot, Platform
from services.status.probes import ProbeRun, concurrency_for, probe_fleet
from shared.logging import get_logger
from shared.schemas import (
    DeployState,
    InstanceObservation,
    PlatformOrphan,
    StatusBatch,
    StatusBatchRequest,
)

log = get_logger("services.status")

# Rows whose platform service exists (or existed): the rest are creates in progress or failed.
MADE = frozenset({"active", "destroying"})
# Probing these tells nothing (or, for a sleeping one, would wake the instance up).
NOT_PROBED = frozenset({"failed", "crashed", "removed", "sleeping"})


async def _observe_platform(
    platform: Platform, rows: list[InstanceInfra], deadline: float
) -> tuple[FleetSnapshot | None, str | None]:
    if not rows:
        # Asked only about creates not yet made (the pool's prober following their phase):
        # nothing to ask the platform, whose every call is budgeted.
        return FleetSnapshot(states={}), None
    refs = {
        row.instance_id: ref
        for row in rows
        if instances_service.has_platform_resources(ref := instances_service.ref_of(row))
    }
    try:
        async with asyncio.timeout_at(deadline):
            return await platform.status_many(refs), None
    except TimeoutError:
        log.warning("status.platform.deadline", instances=len(refs))
        return None, "the platform did not answer before the status batch deadline"
    except Exception as exc:
        error = instances_service.describe(exc)[:500]
        log.warning("status.platform.failed", error=error)
        return None, error


async def observe_fleet(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    platform: Platform,
    settings: Settings,
    body: StatusBatchRequest,
) -> StatusBatch:
    started = time.perf_counter()
    deadline = asyncio.get_running_loop().time() + settings.status_deadline_seconds
    query = select(InstanceInfra).order_by(InstanceInfra.created_at)
    if body.instance_ids is not None:
        query = query.where(InstanceInfra.instance_id.in_(body.instance_ids))
    async with sessionmaker.begin() as session:
        everything = list(await session.scalars(query))
    # A create not yet made (queued, creating, failed) has nothing to observe but its phase.
    rows = [row for row in everything if row.state in MADE]

    # Instances last seen serving are probed while the platform is asked (a remote platform's
    # pages may be paced: seconds per 10,000 instances); the rest once the platform has
    # answered. The early wave's answers for instances the platform now reports not probeable
    # (e.g. just fell asleep) are dropped: the cost is one probe at the change.
    early_urls = {r.instance_id: r.url for r in rows if body.probe and r.url and r.deploy_status == "running"}
    early = asyncio.create_task(_probe(settings, early_urls, deadline))
    try:
        # Every recorded platform resource is named, so a create's half-made one is no orphan
        # (orphans are listed only when the whole fleet is asked about).
        snapshot, platform_error = await _observe_platform(
            platform, everything if body.instance_ids is None else rows, deadline
        )
    except BaseException:
        early.cancel()
        raise
    states = snapshot.states if snapshot else {}
    deploy = {
        row.instance_id: (s.deploy_status if (s := states.get(row.instance_id)) else None) for row in rows
    }
    urls = {
        row.instance_id: url
        for row in rows
        if (url := (s.url if (s := states.get(row.instance_id)) and s.url else row.url))
    }
    targets = {i: u for i, u in urls.items() if deploy[i] not in NOT_PROBED} if body.probe else {}
    late = await _probe(settings, {i: u for i, u in targets.items() if early_urls.get(i) != u}, deadline)
    run = _merge(await early, late, targets, early_urls)
    probes = run.probes
    if snapshot is not None:
        await _record(sessionmaker, rows, deploy)
    # Orphans only mean something when the whole fleet was asked about.
    orphans = snapshot.orphans if snapshot and body.instance_ids is None else []
    log.info(
        "status.batch",
        instances=len(everything),
        probed=len(probes),
        unprobed=len(run.unprobed),
        concurrency=run.concurrency,
        platform_ok=snapshot is not None,
        ms=round((time.perf_counter() - started) * 1000),
    )
    return StatusBatch(
        observed_at=datetime.now(UTC),
        instances={
            row.instance_id: InstanceObservation(
                instance_id=row.instance_id,
                url=urls.get(row.instance_id),
                deploy_status=deploy.get(row.instance_id),
                health=probes.get(row.instance_id),
                created_at=row.created_at,
                error=row.last_error,
                phase=phase_of(row),
            )
            for row in everything
        },
        unprobed=run.unprobed,
        orphans=[PlatformOrphan(ref=o.ref, name=o.name, created_at=o.created_at) for o in orphans],
        platform_ok=snapshot is not None,
        platform_error=platform_error,
    )


async def _probe(settings: Settings, urls: dict[str, str], deadline: float) -> ProbeRun:
    return await probe_fleet(
        urls,
        concurrency=concurrency_for(len(urls), settings.probe_concurrency, settings.probe_concurrency_max),
        timeout=settings.probe_timeout_seconds,
        deadline=deadline,
    )


def _merge(early: ProbeRun, late: ProbeRun, targets: dict[str, str], early_urls: dict[str, str]) -> ProbeRun:
    """The early wave counts only where the instance is still a target at the same url."""
    kept = {i for i in early_urls if targets.get(i) == early_urls[i]}
    probes = {i: probe for i, probe in early.probes.items() if i in kept} | late.probes
    unprobed = sorted([i for i in early.unprobed if i in kept] + late.unprobed)
    return ProbeRun(probes, unprobed, max(early.concurrency, late.concurrency))


async def _record(
    sessionmaker: async_sessionmaker[AsyncSession],
    rows: list[InstanceInfra],
    deploy: dict[str, DeployState | None],
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
