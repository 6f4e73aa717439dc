"""Operator actions on instances, and the read models behind the operator API.

Reads come from the pool database only: operators polling a dashboard never cost a platform call.
Removals mark the row `dead` first (conditional on the status read, and in its own committed
transaction) so no claim can take the instance while services tears it down; if teardown fails,
the row stays `dead` and the tick retries the destroy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from datetime import datetime, timedelta

from pydantic import ValidationError
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pool.activity import log as event_log
from pool.claims import owners
from pool.claims import repository as claims_repo
from pool.claims.statements import DEFAULT_TEMPLATE
from pool.config import Settings
from pool.deps import PoolState
from pool.instances.schemas import Drained, Instance, LoopState, PoolStatus, Removed, Replenished
from pool.metrics import PoolMetrics
from pool.models import Instance as InstanceRow
from pool.models import TickState
from pool.status import BOUND, STATUSES
from pool.templates.pools import template_pools
from shared.errors import Conflict, NotFound, UpstreamError
from shared.logging import get_logger
from shared.schemas import PlatformView

log = get_logger("pool.instances")

FLEET = "default"

DRAIN_PICK = text(
    """
    UPDATE instances
       SET status = 'dead', last_error = 'drained by operator', status_changed_at = now(), updated_at = now()
     WHERE id IN (SELECT id FROM instances
                   WHERE status IN ('idle', 'starting')
                   ORDER BY (status = 'idle') DESC, created_at
                   LIMIT :count
                   FOR UPDATE SKIP LOCKED)
    RETURNING id
    """
)


async def count_instances(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(select(InstanceRow.status, func.count()).group_by(InstanceRow.status))
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    counts.update({str(status): int(n) for status, n in rows.all()})
    return counts


async def list_instances(
    session: AsyncSession, *, statuses: Collection[str] | None = None
) -> list[InstanceRow]:
    query = select(InstanceRow).order_by(InstanceRow.created_at, InstanceRow.id)
    if statuses is not None:
        query = query.where(InstanceRow.status.in_(sorted(statuses)))
    return list((await session.scalars(query)).all())


async def list_agents(session: AsyncSession, *, owner_id: str | None = None) -> list[InstanceRow]:
    """Instances an agent lives on (`pool.status.BOUND`), or one owner's live agents."""
    if owner_id is None:
        return await list_instances(session, statuses=BOUND)
    return await owners.live_agents_of(session, owner_id)


async def loop_state(session: AsyncSession, settings: Settings) -> LoopState:
    row = await session.get(TickState, FLEET)
    if row is None:
        return LoopState()
    state = LoopState.model_validate(row)
    if row.last_tick_at is not None:
        # Healthy while ticks keep coming: three missed intervals mean no leader is ticking.
        # On the database's clock, which stamped last_tick_at, not this replica's.
        allowed = timedelta(seconds=3 * settings.tick_interval_seconds)
        now = await session.scalar(select(func.now()))
        state.healthy = now is not None and now - row.last_tick_at <= allowed
    return state


async def platform_views(session: AsyncSession) -> tuple[list[PlatformView], datetime | None]:
    """Services' platforms as the tick last recorded them; a view it cannot read is left out."""
    row = await session.get(TickState, FLEET)
    if row is None or not row.platforms:
        return [], None
    views = []
    for item in row.platforms:
        try:
            views.append(PlatformView.model_validate(item))
        except ValidationError:
            log.warning("pool.platform_view_unreadable")
    return views, row.platforms_observed_at


async def pool_status(session: AsyncSession, settings: Settings) -> PoolStatus:
    platforms, observed_at = await platform_views(session)
    return PoolStatus(
        counts=await count_instances(session),
        target=settings.min_idle,
        max_total=settings.max_total,
        instances=[Instance.model_validate(row) for row in await list_instances(session)],
        loop=await loop_state(session, settings),
        platforms=platforms,
        platforms_observed_at=observed_at,
        templates=await template_pools(session, settings),
    )


async def refresh_metrics(session: AsyncSession, metrics: PoolMetrics, settings: Settings) -> bytes:
    """The gauges read from the database at scrape time (right on every replica), then all of them."""
    metrics.set_template_pools(await template_pools(session, settings))
    metrics.set_platforms((await platform_views(session))[0])
    metrics.set_queue_depths(await queue_depths(session))
    return metrics.render()


async def _mark_dead(
    pool: PoolState,
    instance_id: str,
    *,
    only_from: str | None,
    reason: str,
    kind: str,
    actor: str = "operator",
) -> None:
    """Mark it dead, its event-log entry (`kind`) in the same transaction."""
    async with pool["sessionmaker"]() as session, session.begin():
        row = await session.get(InstanceRow, instance_id)
        if row is None:
            raise NotFound(f"no instance {instance_id}")
        if only_from is not None and row.status != only_from:
            raise Conflict(f"instance {instance_id} is {row.status}, not {only_from}")
        was = row.status  # the UPDATE below refreshes the loaded row
        # Claims first: a claim in flight locks its claim row before the instance row.
        await claims_repo.release_claims_of(session, instance_id)
        result = await session.execute(
            update(InstanceRow)
            .where(InstanceRow.id == instance_id, InstanceRow.status == was)
            .values(status="dead", last_error=reason, status_changed_at=func.now())
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict(f"instance {instance_id} changed status meanwhile; retry")
        await event_log.add(
            session, instance_id, kind, actor=actor, **{"from": was, "to": "dead", "reason": reason}
        )


async def _destroy(pool: PoolState, instance_id: str) -> None:
    """Tear down through services, then delete our row last (DESIGN.md §3 Destroy)."""
    await pool["services"].destroy_instance(instance_id)
    async with pool["sessionmaker"]() as session, session.begin():
        await session.execute(delete(InstanceRow).where(InstanceRow.id == instance_id))
    log.info("instance.destroyed", instance_id=instance_id)


async def mark_dead(pool: PoolState, instance_id: str, *, reason: str) -> None:
    """An instance's own self-destruct (pool/callbacks): dead now, from whatever status it had."""
    await _mark_dead(
        pool, instance_id, only_from=None, reason=reason, kind="status.changed", actor="instance"
    )


async def destroy(pool: PoolState, instance_id: str) -> None:
    await _destroy(pool, instance_id)


async def kill_instance(pool: PoolState, instance_id: str) -> Removed:
    """Destroy any instance, claimed ones included: an explicit operator decision."""
    await _mark_dead(pool, instance_id, only_from=None, reason="killed by operator", kind="instance.killed")
    await _destroy(pool, instance_id)
    return Removed(instance_id=instance_id, removed=True)


async def dismiss_crashed(pool: PoolState, instance_id: str) -> Removed:
    reason = "dismissed by operator"
    await _mark_dead(pool, instance_id, only_from="crashed", reason=reason, kind="instance.dismissed")
    await _destroy(pool, instance_id)
    return Removed(instance_id=instance_id, removed=True)


async def drain(pool: PoolState, count: int) -> Drained:
    """Remove up to `count` unclaimed instances, idle ones first; claimed ones are never drained."""
    async with pool["sessionmaker"]() as session, session.begin():
        ids = [row[0] for row in (await session.execute(DRAIN_PICK, {"count": count})).all()]
        await event_log.add_many(session, ids, "instance.drained", actor="operator")
    limit = asyncio.Semaphore(pool["settings"].create_concurrency)
    failed: list[str] = []

    async def destroy(instance_id: str) -> None:
        async with limit:
            try:
                await _destroy(pool, instance_id)
            except UpstreamError as exc:
                # The row stays `dead`; the tick destroys it on a later pass.
                log.warning("instance.drain_failed", instance_id=instance_id, error=exc.message)
                failed.append(instance_id)

    await asyncio.gather(*(destroy(instance_id) for instance_id in ids))
    return Drained(requested=count, drained=[i for i in ids if i not in failed], failed=failed)


async def replenish(pool: PoolState, count: int) -> Replenished:
    created = await pool["tick"].create_instances(count)
    return Replenished(requested=count, created=created)


async def reconcile(pool: PoolState) -> dict[str, object]:
    return {"ran": True, "result": await pool["tick"].run_now()}


async def recheck(pool: PoolState, instance_id: str) -> dict[str, object]:
    async with pool["sessionmaker"]() as session:
        if await session.get(InstanceRow, instance_id) is None:
            raise NotFound(f"no instance {instance_id}")
    result = await pool["tick"].recheck(instance_id)
    async with pool["sessionmaker"]() as session:
        row = await session.get(InstanceRow, instance_id)
    return {
        "instanceId": instance_id,
        "status": row.status if row is not None else None,
        "result": result,
    }


async def queue_depths(session: AsyncSession) -> dict[str, int]:
    """Claims waiting per template; the one default template is always reported."""
    return {DEFAULT_TEMPLATE: 0, **await claims_repo.queue_depths(session)}
