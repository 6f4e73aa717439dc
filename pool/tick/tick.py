"""The tick as the rest of the pool sees it: one object, built once in lifespan (`pool.main`).

It holds the tick's context and its runner, and offers what routes and claims ask of the tick:
run one reconcile now, create instances now, re-observe one instance now, refill soon. The
runner always exists: on a replica whose loop is off (`POOL_TICK_ENABLED=false`) it still
serves these on demand, and the periodic loops are simply never started.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from pool.models import TickState
from pool.tick import reconcile, replenish
from pool.tick.context import TickContext
from pool.tick.loop import TickRunner
from pool.tick.observe_soon import ObserveSoon
from shared.errors import Conflict


class Tick:
    def __init__(self, ctx: TickContext, *, holder_id: str | None = None) -> None:
        self.ctx = ctx
        self.runner = TickRunner(ctx, holder_id=holder_id)
        self.loop_enabled = ctx.settings.tick_enabled
        # Platform events ask for one instance to be observed soon (services' webhook, DESIGN.md §13).
        self.observe_soon = ObserveSoon(
            self.recheck,
            spacing_seconds=ctx.settings.event_observe_spacing_seconds,
            concurrency=ctx.settings.event_observe_concurrency,
        )

    def start(self) -> None:
        """Start the periodic loops, if this replica runs them."""
        if self.loop_enabled:
            self.runner.start()

    async def stop(self) -> None:
        await self.observe_soon.stop()
        await self.runner.stop()

    async def run_now(self) -> dict[str, Any]:
        """One reconcile now (operator route); a `Conflict` when another replica leads."""
        try:
            result = await self.runner.run_once()
        finally:
            if not self.loop_enabled:
                # No loop here to keep leading: let the replicas that run one take the lock back.
                await self.runner.leadership.release()
        if result is None:
            raise await self._not_leader()
        return result.summary(self.ctx.settings.min_idle)

    async def create_instances(self, count: int) -> list[str]:
        """Reserve and create `count` instances now (an operator's count: no backoff, max_total caps)."""
        return await replenish.create_instances(self.ctx, count)

    async def recheck(self, instance_id: str) -> dict[str, Any]:
        return await reconcile.recheck(self.ctx, instance_id)

    def wake(self) -> None:
        """Ask for a refill soon, without waiting (after each claim); nothing where no loop runs."""
        if self.loop_enabled:
            self.runner.wake()

    async def _not_leader(self) -> Conflict:
        """Another replica holds the fleet's lock: say who ticks and how often, rather than
        answering as if a tick had run here."""
        interval = f"every {self.ctx.settings.tick_interval_seconds:g} s"
        try:
            async with self.ctx.sessionmaker() as session:
                row = (
                    await session.execute(
                        select(TickState.leader_id, TickState.last_tick_at, func.now().label("now")).where(
                            TickState.fleet == self.ctx.fleet
                        )
                    )
                ).first()
        except (SQLAlchemyError, OSError):
            row = None
        if row is None or row.last_tick_at is None:
            return Conflict(f"this replica is not the leader; the leader ticks {interval}")
        ago = (row.now - row.last_tick_at).total_seconds()
        leader = f"the leader ({row.leader_id}) ticks {interval}, last {ago:.0f} s ago"
        return Conflict(f"this replica is not the leader; {leader}")
