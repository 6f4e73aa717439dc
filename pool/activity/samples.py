"""The minute samples the dashboard's pictures draw, written by the tick leader.

Once per minute (the first tick of a minute; a tick finding the minute's rows written already
costs one indexed lookup), one `template_samples` row per template: its idle, starting and
claimed instances, its queue, its target (and the status API's `targetReason`),
and the create → idle times of the instances that became idle in the minute before. The claims'
own minute counts come from every replica (pool/activity/recorder.py). Both tables are pruned
past POOL_SAMPLES_RETENTION_HOURS in the same pass.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.models import ClaimSample, TemplateSample
from pool.templates.pools import template_pools

STARTING = ("creating", "starting")
CLAIMED = ("claiming", "claimed", "pending_acceptance")

REFILLS = text(
    """
    SELECT template_id,
           percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ready_at - created_at)),
           max(extract(epoch FROM ready_at - created_at))
      FROM instances
     WHERE ready_at > now() - interval '1 minute'
     GROUP BY template_id
    """
)


async def record_minute(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> int:
    """Write this minute's rows unless they are written; returns how many were written."""
    async with sessionmaker.begin() as session:
        minute = await session.scalar(select(func.date_trunc("minute", func.now())))
        written = await session.scalar(
            select(TemplateSample.minute).where(TemplateSample.minute == minute).limit(1)
        )
        if written is not None:
            return 0
        refills = {str(r[0]): (float(r[1]), float(r[2])) for r in await session.execute(REFILLS)}
        rows = [
            _row(minute, pool, refills.get(pool.template_id))
            for pool in await template_pools(session, settings)
        ]
        if rows:
            await session.execute(insert(TemplateSample).values(rows).on_conflict_do_nothing())
        await _prune(session, settings.samples_retention_hours)
        return len(rows)


def _row(minute: Any, pool: Any, refill: tuple[float, float] | None) -> dict[str, Any]:
    counts = pool.counts
    return {
        "minute": minute,
        "template_id": pool.template_id,
        "idle": counts.get("idle", 0),
        "starting": sum(counts.get(s, 0) for s in STARTING),
        "claimed": sum(counts.get(s, 0) for s in CLAIMED),
        "queued": pool.queued,
        "target": pool.target,
        # The coordinator's sizing gives the status API a reason; read it where it is.
        "target_reason": pool.target_reason,
        "refill_p50_seconds": refill[0] if refill else None,
        "refill_max_seconds": refill[1] if refill else None,
    }


async def _prune(session: AsyncSession, retention_hours: float) -> None:
    cutoff = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, retention_hours * 3600)
    await session.execute(delete(TemplateSample).where(TemplateSample.minute < cutoff))
    await session.execute(delete(ClaimSample).where(ClaimSample.minute < cutoff))
