"""Connects the loop to the app's lifespan state (called from `pool.main`)."""

from __future__ import annotations

from typing import Any

from pool.deps import PoolState
from pool.tick import reconcile, replenish
from pool.tick.context import TickContext
from pool.tick.loop import TickRunner
from pool.tick.settings import TickSettings


def build_context(state: PoolState, **overrides: Any) -> TickContext:
    return TickContext(
        sessionmaker=state["sessionmaker"],
        services=state["services"],
        instances=state["instances"],
        http=state["http"],
        box=state["box"],
        settings=TickSettings.from_settings(state["settings"], **overrides),
        metrics=state["metrics"],
    )


def wire(state: PoolState, **overrides: Any) -> TickRunner:
    """Fill the tick hooks of the lifespan state; the runner is started only if the tick is enabled."""
    ctx = build_context(state, **overrides)
    runner = TickRunner(ctx, database_url=state["settings"].database_url)

    async def run_tick() -> dict[str, Any] | None:
        try:
            result = await runner.run_once()
        finally:
            if not state["settings"].tick_enabled:
                # No loop here to keep leading: let the replicas that run one take the lock back.
                await runner.leadership.release()
        return None if result is None else result.summary(ctx.settings.min_idle)

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
