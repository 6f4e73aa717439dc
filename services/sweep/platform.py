"""Platform orphans: what a platform runs under our names that no `instance_infra` row records
(a services crash between the platform call and the row update, a row deleted by hand, a create
whose row a concurrent destroy removed, a failed try a create fell through from). Every configured
platform is listed with its own rows, and each orphan is matched against the rows of the platform
that listed it. Past the grace period they are destroyed through the platform's own
`destroy_orphan`; younger ones are kept and reported.

Safe against a create in flight. A create commits its row (state `creating`) before it calls the
platform, so the rows are read again *after* the listing: an orphan is kept when a row's platform
ref records it (the provider says what such a ref contains: `Platform.orphan_match`; the sweep
never reads a provider's data) or when a row for its instance is still `creating`. That second
read and the destroy run in one transaction holding the instance's advisory lock, which
`create.accept_create` also takes before writing its row, so a create of the same instance id
starting meanwhile waits until the leftover is gone instead of having its fresh instance
destroyed under it. A destroy racing us (its row already deleted, the platform not yet done) is
harmless: both destroy the same thing, and the second finds it gone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.instances import service as instances_service
from services.models import InstanceInfra
from services.platforms.base import PlatformOrphanRef
from services.platforms.registry import PlatformEntry, Platforms
from services.sweep.report import Orphan, SweepReport, reason
from shared.logging import get_logger

log = get_logger(__name__)


def _claims(entry: PlatformEntry, orphan: PlatformOrphanRef) -> ColumnElement[bool]:
    """Rows that make the orphan not an orphan after all."""
    return or_(
        and_(
            InstanceInfra.platform == entry.name,
            InstanceInfra.platform_ref.contains(entry.platform.orphan_match(orphan)),
        ),
        and_(InstanceInfra.instance_id == orphan.instance_id, InstanceInfra.state == "creating"),
    )


async def sweep_platforms(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    platforms: Platforms,
    now: datetime,
    cutoff: datetime,
    report: SweepReport,
) -> None:
    for entry in platforms:
        await sweep_platform(sessionmaker, entry=entry, now=now, cutoff=cutoff, report=report)


async def sweep_platform(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    entry: PlatformEntry,
    now: datetime,
    cutoff: datetime,
    report: SweepReport,
) -> None:
    async with sessionmaker() as session:
        rows = list(await session.scalars(select(InstanceInfra).where(InstanceInfra.platform == entry.name)))
    refs = {
        row.instance_id: ref
        for row in rows
        if instances_service.has_platform_resources(ref := instances_service.ref_of(row))
    }
    try:
        snapshot = await entry.platform.status_many(refs)
    except Exception as exc:
        report.errors.append(f"platform {entry.name} listing: {reason(exc)}")
        return
    for orphan in snapshot.orphans:
        report.orphans.append(await _sweep_one(sessionmaker, entry, orphan, now, cutoff, report))


async def _sweep_one(
    sessionmaker: async_sessionmaker[AsyncSession],
    entry: PlatformEntry,
    orphan: PlatformOrphanRef,
    now: datetime,
    cutoff: datetime,
    report: SweepReport,
) -> Orphan:
    created = orphan.created_at
    age = (now - created).total_seconds() if created else None
    result = Orphan("platform_orphan", entry.name, orphan.ref, orphan.instance_id, age, "removed")
    if orphan.instance_id is None:
        result.action = "reported (not named like an instance)"
        return result
    if created is None or created > cutoff:
        result.action = "kept (younger than grace)" if created else "reported"
        return result
    try:
        async with sessionmaker.begin() as session:
            await session.execute(select(instances_service.instance_lock(orphan.instance_id)))
            if await session.scalar(
                select(func.count()).select_from(InstanceInfra).where(_claims(entry, orphan))
            ):
                result.action = "kept (a row records it)"
                return result
            existed = await entry.platform.destroy_orphan(orphan)
    except Exception as exc:
        result.action = f"failed: {reason(exc)}"
        report.errors.append(f"{entry.name} {orphan.kind} {orphan.ref}: {reason(exc)}")
        return result
    if not existed:
        result.action = "already gone"
    log.warning(
        "sweep.platform_orphan_removed",
        platform=entry.name,
        kind=orphan.kind,
        ref=orphan.ref,
        instance_id=orphan.instance_id,
        existed=existed,
    )
    return result
