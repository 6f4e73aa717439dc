"""The pools the tick keeps warm: one per live template (DESIGN.md §11), in the phase its rollout
is in (pool.templates.rollout).

Read afresh wherever a target is weighed (the tick's plan, the reservation under the lock), so a
template created, changed or archived takes effect at the next tick on every replica. The target is
the one the sizing step set at the last tick (`pool.tick.sizing`): a `fixed` template's is its
`min_idle` (null: POOL_MIN_IDLE) raised by its schedules, as before sizing existed.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Integer, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pool.claims import repository as claims_repo
from pool.config import Settings
from pool.models import Instance, Template, TemplateVersion
from pool.templates.rollout import Rollout, pool_target
from pool.tick.targets import PoolTarget


async def live_pools(session: AsyncSession, settings: Settings) -> tuple[PoolTarget, ...]:
    """Every live template's pool, its queued claims counted as demand."""
    rollout_version = Template.rollout_state["version"].astext.cast(Integer)
    canaries = (
        select(func.count())
        .where(and_(Instance.template_id == Template.id, Instance.template_version == rollout_version))
        .scalar_subquery()
    )
    rows = await session.execute(
        select(
            Template.id,
            Template.current_version,
            TemplateVersion.min_idle,
            Template.rollout_state,
            canaries,
            Template.sizing_state["target"].astext.cast(Integer),
        )
        .join(
            TemplateVersion,
            (TemplateVersion.template_id == Template.id)
            & (TemplateVersion.version == Template.current_version),
        )
        .where(Template.archived_at.is_(None))
        .order_by(Template.created_at, Template.id)
    )
    queued: Mapping[str, int] = await claims_repo.queue_depths(session)
    return tuple(
        pool_target(
            template_id,
            version,
            min_idle=_target(settings, min_idle, sized),
            queued=queued.get(template_id, 0),
            rollout=Rollout.from_json(state) if state else None,
            canaries=int(canary_count or 0),
        )
        for template_id, version, min_idle, state, canary_count, sized in rows.all()
    )


def _target(settings: Settings, min_idle: int | None, sized: int | None) -> int:
    """The idle target the sizing step set at the last tick (pool.tick.sizing); before its first
    tick, the template's floor."""
    if sized is not None:
        return sized
    return settings.min_idle if min_idle is None else min_idle
