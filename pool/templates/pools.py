"""Each template's pool as operators see it (DESIGN.md §11): its target, its queue, its instances
by status and by version. Read by the status API, `poolctl status`, the dashboard and the metrics."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pool.claims import repository as claims_repo
from pool.config import Settings
from pool.models import Instance, Template
from pool.status import STATUSES
from pool.templates.schemas import TemplatePool
from pool.tick.pools import live_pools

# What the status API shows of a template's sizing state (pool.tick.sizing); the rest is bookkeeping.
SHOWN = ("sizing", "limitedBy", "claimsPerMinute", "refill", "idleHoursSpent", "at")


async def template_pools(session: AsyncSession, settings: Settings) -> list[TemplatePool]:
    """Every live template, and any archived one that still has instances."""
    counted = await session.execute(
        select(Instance.template_id, Instance.template_version, Instance.status, func.count()).group_by(
            Instance.template_id, Instance.template_version, Instance.status
        )
    )
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    idle_by_version: dict[str, dict[int, int]] = defaultdict(dict)
    for template_id, version, status, n in counted.all():
        counts[template_id][status] += n
        if status == "idle":
            idle_by_version[template_id][version] = n
    live = {p.template_id: p for p in await live_pools(session, settings)}
    templates = await session.execute(
        select(
            Template.id,
            Template.slug,
            Template.current_version,
            Template.archived_at,
            Template.rollout_state,
            Template.sizing_state,
        ).order_by(Template.created_at, Template.id)
    )
    queued = await claims_repo.queue_depths(session)
    return [
        TemplatePool(
            template_id=template_id,
            slug=slug,
            current_version=version,
            archived=template_id not in live,
            target=live[template_id].min_idle if template_id in live else 0,
            queued=queued.get(template_id, 0),
            counts=counts[template_id],
            idle_by_version={str(v): n for v, n in sorted(idle_by_version[template_id].items())},
            rollout=rollout,
            target_reason=(sizing or {}).get("reason"),
            sizing={k: v for k, v in (sizing or {}).items() if k in SHOWN} or None,
        )
        for template_id, slug, version, archived_at, rollout, sizing in templates.all()
        if archived_at is None or template_id in counts
    ]
