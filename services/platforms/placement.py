"""Placement (DESIGN.md §9): which platform a create goes to, and each platform's health.

A create goes to the first platform, in priority order, that has room and is not backing off.
Room: its live rows (every placed row not yet gone, creates in flight included, and a failed
create whose cleanup left something there) number fewer than its capacity; capacity 0 drains it.
The choice is made and recorded on the row in one transaction under one advisory lock
(`locks.PLACEMENT_KEY`), so two workers, on any replicas, never both take a platform's last place.

A platform that fails creates `SERVICES_PLACEMENT_BACKOFF_AFTER` times in a row is skipped for
`SERVICES_PLACEMENT_BACKOFF_SECONDS`, doubling with each further failure up to
`SERVICES_PLACEMENT_BACKOFF_MAX_SECONDS`; an "at capacity" answer pauses it at once. When the pause
ends the next create tries it again; a success clears the record, unless a failure came after
that create began (a create that succeeds while a later one is refused as "at capacity" says
nothing about room now). The record is in the
database (`platform_health`, the database's clock), so every replica skips the same platforms.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import locks
from services.config import Settings
from services.models import InstanceInfra, PlatformHealth
from services.platforms.registry import PlatformEntry, Platforms
from shared.errors import Conflict
from shared.schemas import PlatformHealthWord, PlatformView

Sessionmaker = async_sessionmaker[AsyncSession]

IN_FLIGHT = ("queued", "creating")
# A placed row holds its place until it is gone; a failed create only while its cleanup left
# something on the platform (`platform_ref` not empty).
HOLDS_A_PLACE = or_(
    InstanceInfra.state.in_(("queued", "creating", "active", "destroying")),
    and_(InstanceInfra.state == "failed", InstanceInfra.platform_ref != text("'{}'::jsonb")),
)


@dataclass(frozen=True)
class Health:
    consecutive_failures: int = 0
    backoff_until: datetime | None = None
    last_error: str | None = None

    def backing_off(self, now: datetime) -> bool:
        return self.backoff_until is not None and self.backoff_until > now


def health_word(entry: PlatformEntry, in_use: int, health: Health, now: datetime) -> PlatformHealthWord:
    if entry.capacity == 0:
        return "draining"
    if health.backing_off(now):
        return "backing off"
    if entry.capacity is not None and in_use >= entry.capacity:
        return "full"
    return "ok"


def choose(
    entries: Iterable[PlatformEntry],
    used: dict[str, int],
    health: dict[str, Health],
    now: datetime,
    skip: frozenset[str] = frozenset(),
) -> tuple[PlatformEntry | None, list[str]]:
    """The first platform that may take one more instance, and why each one before it could not.
    Pure: the one decision, tested with tables."""
    passed: list[str] = []
    for entry in entries:
        if entry.name in skip:
            continue
        in_use, seen = used.get(entry.name, 0), health.get(entry.name, Health())
        word = health_word(entry, in_use, seen, now)
        if word == "ok":
            return entry, passed
        if word == "draining":
            passed.append(f"{entry.name}: draining (capacity 0)")
        elif word == "full":
            passed.append(f"{entry.name}: full ({in_use}/{entry.capacity})")
        else:
            assert seen.backoff_until is not None
            passed.append(
                f"{entry.name}: backing off until {seen.backoff_until:%H:%M:%S} UTC after "
                f"{seen.consecutive_failures} failures (last: {seen.last_error})"
            )
    return None, passed


async def _in_use(session: AsyncSession, *, but: str | None = None) -> tuple[dict[str, int], dict[str, int]]:
    """Live rows and creates in flight per platform (the row `but` left out: the one being placed)."""
    query = (
        select(
            InstanceInfra.platform,
            func.count(),
            func.count().filter(InstanceInfra.state.in_(IN_FLIGHT)),
        )
        .where(InstanceInfra.platform.is_not(None), HOLDS_A_PLACE)
        .group_by(InstanceInfra.platform)
    )
    if but is not None:
        query = query.where(InstanceInfra.instance_id != but)
    used: dict[str, int] = {}
    creating: dict[str, int] = {}
    for name, count, in_flight in await session.execute(query):
        used[str(name)], creating[str(name)] = int(count), int(in_flight)
    return used, creating


async def _health(session: AsyncSession) -> dict[str, Health]:
    rows = await session.scalars(select(PlatformHealth))
    return {r.name: Health(r.consecutive_failures, r.backoff_until, r.last_error) for r in rows}


async def _now(session: AsyncSession) -> datetime:
    now: datetime | None = await session.scalar(select(func.now()))
    assert now is not None
    return now


async def place(
    sessionmaker: Sessionmaker,
    *,
    platforms: Platforms,
    instance_id: str,
    attempt: int,
    skip: frozenset[str] = frozenset(),
) -> tuple[PlatformEntry | None, list[str], datetime]:
    """Choose the create's platform and record it on the row, as one step under the placement
    lock; also when (the database's clock). Raises Conflict when the create is no longer this
    attempt's (destroyed, taken again)."""
    async with sessionmaker.begin() as session:
        await session.execute(select(func.pg_advisory_xact_lock(locks.PLACEMENT_KEY)))
        row = await session.get(InstanceInfra, instance_id, with_for_update=True)
        if row is None or row.state != "creating" or row.create_attempts != attempt:
            raise Conflict(f"instance {instance_id} was destroyed while it was being created")
        used, _ = await _in_use(session, but=instance_id)
        now = await _now(session)
        chosen, passed = choose(platforms, used, await _health(session), now, skip)
        if chosen is not None:
            row.platform, row.provider = chosen.name, chosen.provider
        return chosen, passed, now


async def record_failure(
    sessionmaker: Sessionmaker, *, settings: Settings, name: str, error: str, at_capacity: bool
) -> None:
    """One more failure in a row; past the threshold (at once when full) the platform pauses."""
    after = 1 if at_capacity else settings.placement_backoff_after
    failures = PlatformHealth.consecutive_failures + 1
    # The exponent is capped: 2^n overflows a double past n≈1023.
    delay = func.least(
        settings.placement_backoff_seconds
        * func.power(2, func.least(func.greatest(failures - after, 0), 30)),
        settings.placement_backoff_max_seconds,
    )
    pause = func.now() + func.make_interval(0, 0, 0, 0, 0, 0, delay)
    statement = insert(PlatformHealth).values(
        name=name,
        consecutive_failures=1,
        last_error=error[:500],
        last_failure_at=func.now(),
        backoff_until=(
            func.now() + func.make_interval(0, 0, 0, 0, 0, 0, settings.placement_backoff_seconds)
            if after <= 1
            else None
        ),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[PlatformHealth.name],
        set_={
            "consecutive_failures": failures,
            "last_error": error[:500],
            "last_failure_at": func.now(),
            "backoff_until": case((failures >= after, pause), else_=PlatformHealth.backoff_until),
            "updated_at": func.now(),
        },
    )
    async with sessionmaker.begin() as session:
        await session.execute(statement)


async def record_success(sessionmaker: Sessionmaker, *, name: str, placed_at: datetime) -> None:
    """A create placed at `placed_at` succeeded: the failures before it and their pause are over."""
    older = or_(PlatformHealth.last_failure_at.is_(None), PlatformHealth.last_failure_at < placed_at)
    statement = insert(PlatformHealth).values(name=name, last_success_at=func.now())
    statement = statement.on_conflict_do_update(
        index_elements=[PlatformHealth.name],
        set_={
            "consecutive_failures": case((older, 0), else_=PlatformHealth.consecutive_failures),
            "backoff_until": case((older, None), else_=PlatformHealth.backoff_until),
            "last_success_at": func.now(),
            "updated_at": func.now(),
        },
    )
    async with sessionmaker.begin() as session:
        await session.execute(statement)


async def list_platforms(
    session: AsyncSession, *, platforms: Platforms
) -> tuple[datetime, list[PlatformView]]:
    """Every configured platform as placement sees it now: two queries, whatever the fleet."""
    used, creating = await _in_use(session)
    health, now = await _health(session), await _now(session)
    views = []
    for entry in platforms:
        seen = health.get(entry.name, Health())
        in_use = used.get(entry.name, 0)
        views.append(
            PlatformView(
                name=entry.name,
                provider=entry.provider,
                priority=entry.priority,
                capacity=entry.capacity,
                in_use=in_use,
                creating=creating.get(entry.name, 0),
                health=health_word(entry, in_use, seen, now),
                backoff_until=seen.backoff_until if seen.backing_off(now) else None,
                consecutive_failures=seen.consecutive_failures,
                last_error=seen.last_error,
            )
        )
    return now, views
