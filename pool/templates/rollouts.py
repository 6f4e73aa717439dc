"""Moving rollouts on, in the tick (DESIGN.md §11; the rules are pure, in pool.templates.rollout).

After each tick acts, every template whose rollout is in progress is advanced from what the tick
observed of its instances and what it did to them: a canary destroyed as dead or crashed, or whose
create failed, rolls the template back (its current version becomes the previous one again, in
the same transaction as the rollout's state); a finished phase is recorded. The template rows are
locked while this happens, so an operator's edit in between starts its own rollout afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pool.activity import log as event_log
from pool.models import Template
from pool.templates.rollout import Rollout, Seen, advance, start
from pool.tick.context import TickContext
from pool.tick.plan import Action, Created, CreateFailed, Destroy, Row, Update
from shared.logging import get_logger

log = get_logger("pool.templates.rollout")
ACTIVE = ("canary", "replacing")


async def begin(
    session: AsyncSession, template_id: str, strategy: dict[str, Any], *, version: int, previous: int
) -> None:
    """A new version was written: start its rollout (an unfinished one is superseded)."""
    now = await session.scalar(select(func.now()))
    assert now is not None
    rollout = start(strategy, version=version, previous=previous, now=now)
    await session.execute(
        update(Template).where(Template.id == template_id).values(rollout_state=rollout.to_json())
    )
    log.info("template.rollout.started", template_id=template_id, version=version, strategy=rollout.strategy)


def _seen(template_id: str, rows: Sequence[Row], actions: Sequence[Action]) -> list[Seen]:
    by_id: dict[str, Update | Destroy | Created | CreateFailed] = {}
    for planned in actions:
        if isinstance(planned, Update | Destroy | Created | CreateFailed):
            by_id[planned.instance_id] = planned
    seen = []
    for row in rows:
        if row.template_id != template_id:
            continue
        action = by_id.get(row.id)
        status, failure = str(row.status), None
        if isinstance(action, Update):
            status = action.status
        elif isinstance(action, Created):
            status = "starting"
        elif isinstance(action, Destroy | CreateFailed):
            status, failure = "gone", action.reason
        seen.append(Seen(row.id, row.template_version, status, failure))
    return seen


async def advance_all(
    ctx: TickContext, rows: Sequence[Row], actions: Sequence[Action], now: datetime
) -> None:
    async with ctx.sessionmaker.begin() as session:
        found = await session.execute(
            select(Template.id, Template.rollout_state)
            .where(Template.archived_at.is_(None), Template.rollout_state["phase"].astext.in_(ACTIVE))
            .with_for_update()
        )
        for template_id, state in found.all():
            rollout = Rollout.from_json(state)
            moved = advance(
                rollout,
                _seen(template_id, rows, actions),
                now,
                stuck_seconds=ctx.settings.stuck_timeout_seconds,
            )
            if moved == rollout:
                continue
            values: dict[str, Any] = {"rollout_state": moved.to_json()}
            if moved.phase == "rolled_back":
                values["current_version"] = moved.previous
            await session.execute(update(Template).where(Template.id == template_id).values(**values))
            if moved.phase == "rolled_back":
                await event_log.rolled_back(session, template_id, rows, moved.version, moved.reason)
            log.info(
                "template.rollout.moved",
                template_id=template_id,
                version=moved.version,
                phase=moved.phase,
                reason=moved.reason or "",
            )
