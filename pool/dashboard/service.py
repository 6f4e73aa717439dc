"""What the dashboard shows, shaped for templates from the pool's own read functions (pool DB only).

Views are built field by field, so no secret (the gateway token) can reach a template.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pool.config import Settings
from pool.instances import service as instances_service
from pool.instances.schemas import LoopState
from pool.models import Template as TemplateRow
from pool.status import IN_FLIGHT, STATUSES
from shared.schemas import PlatformView

# The filter groups of the agents list; "pending" is a claim waiting for its invite to be accepted.
GROUPS: dict[str, tuple[str, ...]] = {
    "all": STATUSES,
    "claimed": ("claiming", "claimed"),
    "pending": ("pending_acceptance",),
    "crashed": ("crashed", "dead", "tainted"),
    "idle": ("idle",),
    "starting": ("creating", "starting", "sleeping"),
}
AGENT_LIST_LIMIT = 500


@dataclass(frozen=True)
class Summary:
    counts: dict[str, int]
    target: int
    loop: LoopState
    # Services' platforms as the tick last read them (empty until it has).
    platforms: tuple[PlatformView, ...] = ()

    @property
    def backing_off(self) -> bool:
        until = self.loop.backoff_until
        return until is not None and until > datetime.now(UTC)


@dataclass(frozen=True)
class AgentView:
    id: str
    name: str
    status: str
    agent_name: str | None
    invite_url: str | None
    since: datetime
    last_error: str | None
    # The template it was made from, as "slug vN" (its id where the template row is gone).
    template: str = ""
    # The instance this agent was cloned from (DESIGN.md §11), if it was.
    parent_instance: str | None = None

    @property
    def uptime(self) -> str:
        return human_duration(datetime.now(UTC) - self.since)

    @property
    def actions(self) -> tuple[str, ...]:
        if self.status == "crashed":
            return ("recheck", "dismiss")
        if self.status in IN_FLIGHT or self.status == "dead":
            # A request in flight owns the row, or its teardown is under way.
            return ()
        return ("recheck", "kill")


def human_duration(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes}m"
    return f"{hours // 24}d {hours % 24}h"


async def get_summary(session: AsyncSession, settings: Settings) -> Summary:
    platforms, _ = await instances_service.platform_views(session)
    return Summary(
        counts=await instances_service.count_instances(session),
        target=settings.min_idle,
        loop=await instances_service.loop_state(session, settings),
        platforms=tuple(platforms),
    )


async def list_agents(session: AsyncSession, *, group: str, query: str) -> list[AgentView]:
    rows = await instances_service.list_instances(session, statuses=GROUPS.get(group, STATUSES))
    slugs = {row.id: row.slug for row in await session.execute(select(TemplateRow.id, TemplateRow.slug))}
    needle = query.strip().lower()
    views = [
        AgentView(
            id=row.id,
            name=row.name,
            status=row.status,
            agent_name=row.agent_name,
            invite_url=row.invite_url,
            since=row.claimed_at or row.created_at,
            last_error=row.last_error,
            template=f"{slugs.get(row.template_id, row.template_id)} v{row.template_version}",
            parent_instance=row.parent_instance,
        )
        for row in reversed(rows)  # newest first
        if not needle or any(needle in (value or "").lower() for value in (row.id, row.name, row.agent_name))
    ]
    return views[:AGENT_LIST_LIMIT]


def qr_data_uri(text: str) -> str:
    """A PNG of the QR code as a data URI, rendered here: no outside service sees the invite."""
    import segno  # only when a launch from the dashboard shows its invite: not in every pool process

    return str(segno.make(text, error="m").png_data_uri(scale=6, border=3))
