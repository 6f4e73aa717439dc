"""One observation of the fleet for the pool's tick: deploy status from each platform in one
`status_many` call about its own rows (every platform at once, each at its O(pages) cost), plus a
`/pool/health` probe per instance (`services.status.probes`).

The whole batch has a deadline (`SERVICES_STATUS_DEADLINE_SECONDS`; the pool's timeout for this
call must be longer): the platform observation may use all of it, the probes use what is left.
A slow fleet yields partial health: instances not probed in time are listed in `unprobed`, which
the pool treats as no observation, never as a failure. A platform failure (or the platform still
answering at the deadline) is reported, never turned into a 5xx: `platformOk: false` with each
failing platform named in `platformError`, and on each instance of a failing platform
`platformOk: false` and a null deploy status, so the pool changes nothing about those instances
while it still acts on what the other platforms reported.
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
from services.platforms.registry import Platforms
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
    name: str, platform: Platform, rows: list[InstanceInfra], deadline: float
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
        log.warning("status.platform.deadline", platform=name, instances=len(refs))
        return None, "the platform did not answer before the status batch deadline"
    except Exception as exc:
        error = instances_service.describe(exc)[:500]
        log.warning("status.platform.failed", platform=name, error=error)
        return None, error


async def _observe_platforms(
    platforms: Platforms, rows: list[InstanceInfra], *, everything: bool, deadline: float
) -> tuple[dict[str, FleetSnapshot | None], dict[str, str]]:
    """Each platform about its own rows, all at once. Asked about the whole fleet, every platform
    lists (its orphans); asked about some ids, only the platforms those live on."""
    mine: dict[str, list[InstanceInfra]] = {}
    for row in rows:
        if row.platform is not None:
            mine.setdefault(row.platform, []).append(row)
    # A platform with no rows is not asked (every call is budgeted): the sweep lists it for orphans.
    names = [entry.name for entry in platforms if everything or entry.name in mine]
    answers = await asyncio.gather(
        *(
            _observe_platform(n, platforms.entries_by_name[n].platform, mine.get(n, []), deadline)
            for n in names
        )
    )
    snapshots = {name: snapshot for name, (snapshot, _) in zip(names, answers, strict=True)}
    errors = {name: error for name, (_, error) in zip(names, answers, strict=True) if error is not None}
    for name in sorted(set(mine) - set(names)):
        # Recorded on a platform no longer configured: nothing can observe it.
        snapshots[name] = None
        errors[name] = "not in SERVICES_PLATFORMS"
    return snapshots, errors


async def observe_fleet(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    platforms: Platforms,
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
        snapshots, errors = await _observe_platforms(
            platforms,
            everything if body.instance_ids is None else rows,
            everything=body.instance_ids is None,
            deadline=deadline,
        )
    except BaseException:
        early.cancel()
        raise
    answered = {name for name, snapshot in snapshots.items() if snapshot is not None}
    states = {i: s for snapshot in snapshots.values() if snapshot for i, s in snapshot.states.items()}
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
    if answered:
        await _record(sessionmaker, rows, deploy)
    # Orphans only mean something when the whole fleet was asked about.
    orphans = (
        [(name, o) for name, snapshot in snapshots.items() if snapshot for o in snapshot.orphans]
        if body.instance_ids is None
        else []
    )
    log.info(
        "status.batch",
        instances=len(everything),
        probed=len(probes),
        unprobed=len(run.unprobed),
        concurrency=run.concurrency,
        platforms_failed=",".join(sorted(errors)) or None,
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
                platform=row.platform,
                platform_ok=row.platform not in errors,
            )
            for row in everything
        },
        unprobed=run.unprobed,
        orphans=[
            PlatformOrphan(ref=o.ref, name=o.name, created_at=o.created_at, platform=name)
            for name, o in orphans
        ],
        platform_ok=not errors,
        platform_error="; ".join(f"{name}: {error}" for name, error in sorted(errors.items())) or None,
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
