"""The platform half of a status batch: each platform asked about its own rows, all at once,
within the batch's deadline; a failure or the deadline is an answer (`None` and an error), never
an exception.

Asked about the whole fleet, every platform lists itself in full (orphans found); asked about
some ids, only the platforms those live on are asked, about those instances only (batched, no
listing: `Platform.status_many(listing=False)`), so observing the few instances a tick or an
event observes costs one call per batch of them, not the fleet's pages.
"""

from __future__ import annotations

import asyncio

from services.instances import service as instances_service
from services.models import InstanceInfra
from services.platforms.base import FleetSnapshot, Platform
from services.platforms.registry import Platforms
from shared.logging import get_logger

log = get_logger("services.status")


async def _observe_platform(
    name: str, platform: Platform, rows: list[InstanceInfra], *, listing: bool, deadline: float
) -> tuple[FleetSnapshot | None, str | None]:
    if not rows and not listing:
        # Asked only about creates not yet made (the pool's prober following their phase), or
        # about none: nothing to ask the platform, whose every call is budgeted.
        return FleetSnapshot(states={}), None
    refs = {
        row.instance_id: ref
        for row in rows
        if instances_service.has_platform_resources(ref := instances_service.ref_of(row))
    }
    if not refs and not listing:
        return FleetSnapshot(states={}), None
    try:
        async with asyncio.timeout_at(deadline):
            return await platform.status_many(refs, listing=listing), None
    except TimeoutError:
        log.warning("status.platform.deadline", platform=name, instances=len(refs))
        return None, "the platform did not answer before the status batch deadline"
    except Exception as exc:
        error = instances_service.describe(exc)[:500]
        log.warning("status.platform.failed", platform=name, error=error)
        return None, error


async def observe_platforms(
    platforms: Platforms,
    rows: list[InstanceInfra],
    configured: set[str],
    *,
    everything: bool,
    deadline: float,
) -> tuple[dict[str, FleetSnapshot | None], dict[str, str]]:
    """Each platform about its own `rows`, all at once. `everything`: list every platform in
    full (its orphans), else only the platforms `rows` live on. `configured`: the platforms of
    every row the batch reports (one no longer configured cannot be observed: an error)."""
    mine: dict[str, list[InstanceInfra]] = {}
    for row in rows:
        if row.platform is not None:
            mine.setdefault(row.platform, []).append(row)
    # A platform with no rows is not asked (every call is budgeted): the sweep lists it for orphans.
    names = [entry.name for entry in platforms if everything or entry.name in mine]
    answers = await asyncio.gather(
        *(
            _observe_platform(
                n,
                platforms.entries_by_name[n].platform,
                mine.get(n, []),
                listing=everything,
                deadline=deadline,
            )
            for n in names
        )
    )
    snapshots = {name: snapshot for name, (snapshot, _) in zip(names, answers, strict=True)}
    errors = {name: error for name, (_, error) in zip(names, answers, strict=True) if error is not None}
    for name in sorted((set(mine) | configured) - set(platforms.entries_by_name)):
        # Recorded on a platform no longer configured: nothing can observe it.
        snapshots[name] = None
        errors[name] = "not in SERVICES_PLATFORMS"
    return snapshots, errors
