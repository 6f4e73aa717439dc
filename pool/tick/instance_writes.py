"""The tick's one-row writes: a status change, a destroy, an orphan's destroy.

Each runs in its own transaction, conditional on the status the tick read, so a claim that moved
the row meanwhile wins and one failure does not undo another (`reconcile._act` runs them one by
one; the starting prober reuses them).
"""

from __future__ import annotations

from sqlalchemy import delete, func, update

from pool.activity import log as event_log
from pool.models import Instance
from pool.tick.context import TickContext
from pool.tick.plan import Destroy, DestroyOrphan, Update
from shared.logging import get_logger

log = get_logger("pool.tick")


async def apply_update(ctx: TickContext, action: Update) -> bool:
    changed = action.status != action.read
    async with ctx.sessionmaker.begin() as session:
        outcome = await session.execute(
            update(Instance)
            .where(Instance.id == action.instance_id, Instance.status == action.read)
            .values(
                status=action.status,
                failed_probes=action.failed_probes,
                deploy_status=action.deploy_status,
                last_probe_at=func.now(),
                **({"status_changed_at": func.now()} if changed else {}),
                **({"last_healthy_at": func.now()} if action.healthy else {}),
                # First idle: its create-asked → idle time is a refill sample (pool.claims.eta).
                **(
                    {"ready_at": func.coalesce(Instance.ready_at, func.now())}
                    if action.status == "idle"
                    else {}
                ),
            )
        )
        if outcome.rowcount == 1 and changed:  # type: ignore[attr-defined]
            await event_log.status_changed(
                session, action.instance_id, action.read, action.status, action.reason
            )
        return bool(outcome.rowcount == 1)  # type: ignore[attr-defined]


async def destroy(ctx: TickContext, action: Destroy) -> bool:
    """Mark (conditionally), tear down through services, then delete the row: services first,
    so a failed teardown leaves a marked row the next tick retries."""
    async with ctx.sessionmaker.begin() as session:
        marked = await session.execute(
            update(Instance)
            .where(Instance.id == action.instance_id, Instance.status == action.read)
            .values(status=action.mark, status_changed_at=func.now(), last_error=action.reason[:500])
        )
        if marked.rowcount != 1:  # type: ignore[attr-defined]
            return False
        await event_log.destroying(session, action.instance_id, action.read, action.mark, action.reason)
    log.info(
        "tick.instance.destroying", instance_id=action.instance_id, was=action.read, reason=action.reason
    )
    await ctx.services.destroy_instance(action.instance_id)
    async with ctx.sessionmaker.begin() as session:
        await session.execute(
            delete(Instance).where(Instance.id == action.instance_id, Instance.status == action.mark)
        )
    return True


async def destroy_orphan(ctx: TickContext, action: DestroyOrphan) -> bool:
    async with ctx.sessionmaker.begin() as session:
        if await session.get(Instance, action.instance_id) is not None:
            return False
    await ctx.services.destroy_instance(action.instance_id)
    log.info("tick.orphan.destroyed", instance_id=action.instance_id, reason=action.reason)
    return True
