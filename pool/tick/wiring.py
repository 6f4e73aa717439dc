"""Connects the loop to the app's lifespan state (called from `pool.main`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from pool.deps import PoolState
from pool.models import TickState
from pool.tick import reconcile, replenish
from pool.tick.context import TickContext
from pool.tick.loop import TickRunner
from pool.tick.settings import TickSettings
from shared.errors import Conflict


def build_context(state: PoolState, **overrides: Any) -> TickContext:
    return TickContext(
        sessionmaker=state["sessionmaker"],
        services=state["services"],
        instances=state["instances"],
        box=state["box"],
        settings=TickSettings.from_settings(state["settings"], **overrides),
        metrics=state["metrics"],
    )


async def _not_leader(ctx: TickContext) -> Conflict:
    """Another replica holds the fleet's lock: say who ticks and how often, rather than
    answering as if a tick had run here."""
    interval = f"every {ctx.settings.interval_seconds:g} s"
    try:
        async with ctx.sessionmaker() as session:
            row = (
                await session.execute(
                    select(TickState.leader_id, TickState.last_tick_at).where(
                        TickState.fleet == ctx.settings.fleet
                    )
                )
            ).first()
    except (SQLAlchemyError, OSError):
        row = None
    if row is None or row.last_tick_at is None:
        return Conflict(f"this replica is not the leader; the leader ticks {interval}")
    ago = (datetime.now(UTC) - row.last_tick_at).total_seconds()
    return Conflict(
        f"this replica is not the leader; the leader ({row.leader_id}) ticks {interval}, last {ago:.0f} s ago"
    )


def wire(state: PoolState, **overrides: Any) -> TickRunner:
    """Fill the tick hooks of the lifespan state; the runner is started only if the tick is enabled."""
    ctx = build_context(state, **overrides)
    runner = TickRunner(ctx, database_url=state["settings"].database_url)

    async def run_tick() -> dict[str, Any]:
        try:
            result = await runner.run_once()
        finally:
            if not state["settings"].tick_enabled:
                # No loop here to keep leading: let the replicas that run one take the lock back.
                await runner.leadership.release()
        if result is None:
            raise await _not_leader(ctx)
        return result.summary(ctx.settings.min_idle)

    async def create_instances(count: int) -> list[str]:
        return await replenish.create_instances(ctx, count)

    async def recheck(instance_id: str) -> dict[str, Any]:
        return await reconcile.recheck(ctx, instance_id)

    state["run_tick"] = run_tick
    state["create_instances"] = create_instances
    state["recheck"] = recheck
    if state["settings"].tick_enabled:
        state["tick"] = runner
        state["wake"] = runner.wake
    return runner
