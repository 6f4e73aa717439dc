"""One observation of the fleet, or of some of it, for the pool's tick: deploy status from each
platform in one `status_many` call about its own rows (every platform at once; `services.status.
platforms`), plus a `/pool/health` probe per instance (`services.status.probes`).

What the pool asks (`StatusBatchRequest`), so that a tick costs O(changes):
- `instance_ids` null: the whole fleet, every platform listed in full (orphans too);
- `instance_ids`: those instances; of them, `platform_ids` (default: all) are asked about on the
  platform without a listing, the rest carry the deploy status services last observed (each
  observation records it), and every one is probed;
- `changes_only` (the pool's safety-net listing): the platforms listed in full, no probes, and
  only the instances whose deploy status is not `running` reported, with every id services holds
  (`fleet`) and what the listing cost (`platform_calls`).

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
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.instances.create import phase_of
from services.models import InstanceInfra
from services.platforms.registry import Platforms
from services.status.platforms import observe_platforms
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
    whole = body.instance_ids is None
    # The rows the platform is asked about now; the others keep the deploy status last observed.
    wanted = None if body.platform_ids is None else set(body.platform_ids)
    asked = rows if whole or wanted is None else [row for row in rows if row.instance_id in wanted]
    probing = body.probe and not body.changes_only

    # Instances last seen serving are probed while the platform is asked (a remote platform's
    # pages may be paced: seconds per 10,000 instances); the rest once the platform has
    # answered. The early wave's answers for instances the platform now reports not probeable
    # (e.g. just fell asleep) are dropped: the cost is one probe at the change.
    early_urls = {r.instance_id: r.url for r in rows if probing and r.url and r.deploy_status == "running"}
    early = asyncio.create_task(_probe(settings, early_urls, deadline))
    try:
        # Every recorded platform resource is named, so a create's half-made one is no orphan
        # (orphans are listed only when the whole fleet is asked about).
        snapshots, errors = await observe_platforms(
            platforms,
            everything if whole else asked,
            {row.platform for row in everything if row.platform is not None},
            everything=whole,
            deadline=deadline,
        )
    except BaseException:
        early.cancel()
        raise
    answered = {name for name, snapshot in snapshots.items() if snapshot}
    states = {i: s for snapshot in snapshots.values() if snapshot for i, s in snapshot.states.items()}
    asked_ids = {row.instance_id for row in asked}
    deploy: dict[str, DeployState | None] = {
        row.instance_id: (
            (s.deploy_status if (s := states.get(row.instance_id)) else None)
            if row.instance_id in asked_ids
            else cast(DeployState | None, row.deploy_status)
        )
        for row in rows
    }
    urls = {
        row.instance_id: url
        for row in rows
        if (url := (s.url if (s := states.get(row.instance_id)) and s.url else row.url))
    }
    targets = {i: u for i, u in urls.items() if deploy[i] not in NOT_PROBED} if probing else {}
    late = await _probe(settings, {i: u for i, u in targets.items() if early_urls.get(i) != u}, deadline)
    run = _merge(await early, late, targets, early_urls)
    probes = run.probes
    if answered:
        await _record(sessionmaker, [row for row in rows if row.instance_id in asked_ids], deploy)
    # Orphans only mean something when the whole fleet was asked about.
    orphans = (
        [(name, o) for name, snapshot in snapshots.items() if snapshot for o in snapshot.orphans]
        if whole
        else []
    )
    reported = _changed(everything, deploy, errors) if body.changes_only else everything
    log.info(
        "status.batch",
        instances=len(everything),
        reported=len(reported),
        platform_asked=len(asked) if not whole else "all",
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
            for row in reported
        },
        unprobed=run.unprobed,
        orphans=[
            PlatformOrphan(ref=o.ref, name=o.name, created_at=o.created_at, platform=name)
            for name, o in orphans
        ],
        platform_ok=not errors,
        platform_error="; ".join(f"{name}: {error}" for name, error in sorted(errors.items())) or None,
        fleet=[row.instance_id for row in everything] if body.changes_only else None,
        platform_calls=(
            sum(snapshot.api_calls for snapshot in snapshots.values() if snapshot)
            if body.changes_only
            else None
        ),
    )


def _changed(
    rows: Iterable[InstanceInfra], deploy: dict[str, DeployState | None], errors: dict[str, str]
) -> list[InstanceInfra]:
    """What a safety-net listing reports: the made instances whose platform answered with any
    deploy status but `running` (crashed, failed, removed, missing, asleep, redeploying...).
    A running one needs nothing from a listing: its health is on the pool's rotation."""
    return [
        row
        for row in rows
        if row.state in MADE and row.platform not in errors and deploy.get(row.instance_id) != "running"
    ]


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
