"""The platform step of a create (`create.run_create`): placed on the first platform with room, and
on a provider failure or "at capacity" there, on the next (DESIGN.md §9).

Each try is recorded on the row before the platform is called (`placement.place`), so a crash
mid-way leaves a row whose platform says where to clean up. A failed try removes what it made on
that platform and clears the row's ref before the next platform is chosen; if that removal fails
the create stops there (the row keeps the ref, and the create's rollback or a destroy finishes
it), so nothing is ever left on a platform the row no longer names. Tools made before the platform
step stay: they do not depend on the platform.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.config import Settings
from services.instances.service import Sessionmaker, apply_ref, describe, has_platform_resources, ref_of
from services.models import InstanceInfra
from services.platforms import placement
from services.platforms.base import AtCapacity, InstanceSpec, PlatformRef, ProgressCallback
from services.platforms.registry import PlatformEntry, Platforms
from shared.errors import Conflict, UpstreamError
from shared.logging import get_logger

log = get_logger("services.instances.create")


@dataclass
class MadeSoFar:
    """The platform being tried and the last ref it reported (`on_progress`): what a failure of
    this attempt must remove, even once the row is gone."""

    platform: str | None = None
    ref: PlatformRef | None = None

    def pairs(self) -> list[tuple[str | None, PlatformRef]]:
        return [(self.platform, self.ref)] if self.ref is not None else []


class NoPlatform(UpstreamError):
    """Every platform refused or failed this create; the message names each and why."""


class LeftBehind(UpstreamError):
    """A failed try's resources could not be removed; the create stops on that platform."""


async def create_placed(
    sessionmaker: Sessionmaker,
    *,
    platforms: Platforms,
    settings: Settings,
    instance_id: str,
    attempt: int,
    spec: InstanceSpec,
    on_progress: ProgressCallback,
    made: MadeSoFar,
) -> tuple[PlatformEntry, PlatformRef]:
    """The platform the create landed on and its ref; raises NoPlatform when none would take it."""
    # Why each platform did not take it: the ones tried (each at most once), and the latest reason
    # of those passed over (full, draining, backing off), which are looked at again each round.
    why: dict[str, str] = {}
    tried: set[str] = set()
    while True:
        entry, passed, placed_at = await placement.place(
            sessionmaker,
            platforms=platforms,
            instance_id=instance_id,
            attempt=attempt,
            skip=frozenset(tried),
        )
        for line in passed:
            why[line.split(":", 1)[0]] = line
        if entry is None:
            reasons = [why[name] for name in platforms.names() if name in why]
            # Each platform in priority order with why it did not take the create.
            raise NoPlatform("; ".join(reasons) or "no platform is configured")
        made.platform, made.ref = entry.name, None
        tried.add(entry.name)
        try:
            ref = await entry.platform.create(spec, on_progress)
        except Conflict:
            raise  # destroyed or taken again: not the platform's failure
        except Exception as exc:
            error = describe(exc)
            why[entry.name] = f"{entry.name}: {error}"
            log.warning(
                "instance.create.platform_failed", instance_id=instance_id, platform=entry.name, error=error
            )
            await placement.record_failure(
                sessionmaker,
                settings=settings,
                name=entry.name,
                error=error,
                at_capacity=isinstance(exc, AtCapacity),
            )
            await _remove_try(sessionmaker, entry, instance_id, attempt, made, why[entry.name])
            continue
        await placement.record_success(sessionmaker, name=entry.name, placed_at=placed_at)
        return entry, ref


async def _remove_try(
    sessionmaker: Sessionmaker,
    entry: PlatformEntry,
    instance_id: str,
    attempt: int,
    made: MadeSoFar,
    failure: str,
) -> None:
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id)
        recorded = ref_of(row) if row is not None else None
    refs = [ref for ref in (recorded, made.ref) if ref is not None and has_platform_resources(ref)]
    if refs:
        try:
            await entry.platform.destroy(refs[0])
        except Exception as exc:
            # The create's rollback tries again and says what is left (`create._fail`).
            raise LeftBehind(failure) from exc
    made.ref = None
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id, with_for_update=True)
        if row is None or row.state != "creating" or row.create_attempts != attempt:
            raise Conflict(f"instance {instance_id} was destroyed while it was being created")
        apply_ref(row, PlatformRef(provider=entry.provider, data={}, url=None))
