"""Creating instances without over-creating.

Rows are reserved as `creating` before services is called, in one transaction that holds a
transaction-level advisory lock while it counts. So two ticks, two replicas, a claim burst and
an operator all see each other's in-flight creates, and the deficit is never created twice.

Who decides how many: the tick's plan (`Create.count`, backoff already weighed), the refill after
a claim (the deficit, `pool.tick.plan.replenish_count`, unless creates back off) or an operator
(an explicit count). The count taken under the lock only ever lowers the tick's: what another
replica's refill reserved since the tick read its rows is not created twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pool import locks
from pool.models import Instance
from pool.tick import state
from pool.tick.context import TickContext
from pool.tick.plan import replenish_count
from shared.errors import AppError
from shared.ids import new_instance_id
from shared.logging import get_logger
from shared.schemas import InstanceCreate

log = get_logger("pool.tick.replenish")


def instance_name(instance_id: str) -> str:
    return f"agent-{instance_id}"


async def reserve(ctx: TickContext, count: int | None, *, planned: bool = False) -> list[str]:
    """Insert `creating` rows and return their ids:
    - `count=None` (after a claim): the deficit, nothing while creates back off;
    - `planned` (the tick's `Create`): `count`, lowered to the deficit counted under the lock;
    - otherwise (an operator): `count`, capped at max_total.
    """
    settings = ctx.settings
    async with ctx.sessionmaker.begin() as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": locks.replenish(ctx.fleet)})
        rows = await session.execute(select(Instance.status, func.count()).group_by(Instance.status))
        counts: Counter[str] = Counter({str(r[0]): int(r[1]) for r in rows})
        if count is None:
            may_create = await state.may_create(session, ctx.fleet)
            wanted = replenish_count(counts, ctx.target(may_create=may_create))
        elif planned:
            wanted = min(count, replenish_count(counts, ctx.target()))
        else:
            wanted = max(0, min(count, settings.max_total - sum(counts.values())))
        ids = [new_instance_id() for _ in range(wanted)]
        if ids:
            await session.execute(
                insert(Instance),
                [{"id": i, "name": instance_name(i), "status": "creating"} for i in ids],
            )
    return ids


async def create_reserved(ctx: TickContext, instance_id: str) -> bool:
    async with ctx.slots():
        body = InstanceCreate(
            instance_id=instance_id, name=instance_name(instance_id), tools=list(ctx.settings.tools or [])
        )
        try:
            created = await ctx.services.create_instance(body)
            if not created.gateway_token or not created.url:
                raise AppError("services created the instance without a url or gateway token")
        except Exception as exc:  # noqa: BLE001 - any failure frees the reservation
            await _create_failed(ctx, instance_id, f"{type(exc).__name__}: {exc}")
            return False
        async with ctx.sessionmaker.begin() as session:
            result = await session.execute(
                update(Instance)
                .where(Instance.id == instance_id, Instance.status == "creating")
                .values(
                    status="starting",
                    url=created.url,
                    gateway_token_enc=ctx.box.encrypt(created.gateway_token),
                    deploy_status=created.deploy_status,
                    status_changed_at=func.now(),
                )
            )
            kept = result.rowcount == 1  # type: ignore[attr-defined]
            await _record(ctx, session, None)
        if not kept:
            # Killed (or swept as abandoned) while services was creating it: undo the create.
            log.info("tick.instance.create_superseded", instance_id=instance_id)
            try:
                await ctx.services.destroy_instance(instance_id)
            except AppError as exc:
                # The orphan sweep retries once the grace period has passed.
                log.warning("tick.instance.destroy_failed", instance_id=instance_id, error=exc.message)
            return False
        log.info("tick.instance.created", instance_id=instance_id)
        return True


async def create_instances(ctx: TickContext, count: int | None = None) -> list[str]:
    """Reserve and create `count` instances (None: the deficit); returns the ids created."""
    ids = await reserve(ctx, count)
    created = []
    for instance_id, ok in zip(ids, await _create_all(ctx, ids), strict=True):
        if ok:
            created.append(instance_id)
    return created


async def refill(ctx: TickContext, planned: int | None = None) -> list[str]:
    """Reserve and create in the background: the tick's `planned` count, or (None, after a claim)
    the deficit now. Returns the ids reserved."""
    ids = await reserve(ctx, planned, planned=planned is not None)
    for instance_id in ids:
        ctx.spawn(create_reserved(ctx, instance_id))
    return ids


async def _create_all(ctx: TickContext, ids: list[str]) -> list[bool]:
    return list(await asyncio.gather(*(create_reserved(ctx, i) for i in ids)))


async def _create_failed(ctx: TickContext, instance_id: str, error: str) -> None:
    log.warning("tick.instance.create_failed", instance_id=instance_id, error=error[:300])
    if ctx.metrics is not None:
        ctx.metrics.record_create_failure()
    # If services did create it after all, the orphan sweep tears it down after the grace period.
    async with ctx.sessionmaker.begin() as session:
        await session.execute(
            delete(Instance).where(Instance.id == instance_id, Instance.status == "creating")
        )
        await _record(ctx, session, error)


async def _record(ctx: TickContext, session: AsyncSession, error: str | None) -> None:
    settings = ctx.settings
    await state.record_create(
        session,
        ctx.fleet,
        error=error,
        after=settings.create_backoff_after_failures,
        base_seconds=settings.create_backoff_base_seconds,
        max_seconds=settings.create_backoff_max_seconds,
    )
