"""The `tick_state` row of a fleet: loop health and create backoff, readable on every replica.

One clock: every time written here and every comparison with one is the database's `now()`, never
a replica's wall clock (replicas' clocks drift apart; the database's is the one they share)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pool.models import TickState
from shared.schemas import PlatformList

# One fleet per pool database today; the name keys its tick_state row and its locks.
FLEET = "default"


async def ensure(session: AsyncSession, fleet: str) -> None:
    await session.execute(insert(TickState).values(fleet=fleet).on_conflict_do_nothing())


async def may_create(session: AsyncSession, fleet: str) -> bool:
    """False while failed creates back off (`record_create`). The one reading of the backoff: the
    tick's plan and the refill after a claim both ask here; an operator's explicit count does not."""
    backing_off = await session.scalar(
        select(~or_(TickState.backoff_until.is_(None), TickState.backoff_until <= func.now())).where(
            TickState.fleet == fleet
        )
    )
    return not backing_off


async def db_now(session: AsyncSession) -> datetime:
    """The database's clock: what the tick measures every age and deadline against."""
    now: datetime | None = await session.scalar(select(func.now()))
    assert now is not None
    return now


async def record_tick(
    session: AsyncSession,
    fleet: str,
    *,
    leader_id: str,
    started_at: datetime,
    duration_ms: int,
    summary: dict[str, Any],
    error: str | None,
    platforms: PlatformList | None = None,
) -> None:
    """`platforms`: services' latest view of its platforms; None keeps the one recorded before
    (services did not answer, or is older than placement)."""
    await ensure(session, fleet)
    seen: dict[str, Any] = {}
    if platforms is not None:
        seen = {
            "platforms": [view.model_dump(mode="json", by_alias=True) for view in platforms.platforms],
            "platforms_observed_at": platforms.observed_at,
        }
    await session.execute(
        update(TickState)
        .where(TickState.fleet == fleet)
        .values(
            leader_id=leader_id,
            leader_since=func.coalesce(
                # Keep the first tick time of this leader; a new leader restarts the clock.
                select(TickState.leader_since)
                .where(TickState.fleet == fleet, TickState.leader_id == leader_id)
                .scalar_subquery(),
                started_at,
            ),
            last_tick_at=started_at,
            last_tick_duration_ms=duration_ms,
            last_summary=summary,
            last_error=error,
            **seen,
        )
    )


async def record_create(
    session: AsyncSession,
    fleet: str,
    *,
    error: str | None,
    after: int,
    base_seconds: float,
    max_seconds: float,
) -> None:
    """A success clears the backoff; failures past `after` back off exponentially."""
    await ensure(session, fleet)
    if error is None:
        values: dict[str, Any] = {"consecutive_create_failures": 0, "backoff_until": None}
    else:
        failures = TickState.consecutive_create_failures + 1
        # The exponent is capped: 2^n overflows a double past n≈1023 (days of failing creates).
        delay = func.least(base_seconds * func.power(2, func.least(failures - after, 30)), max_seconds)
        values = {
            "consecutive_create_failures": failures,
            "last_create_error": error[:500],
            "backoff_until": case(
                (failures >= after, func.now() + func.make_interval(0, 0, 0, 0, 0, 0, delay)),
                else_=TickState.backoff_until,
            ),
        }
    await session.execute(update(TickState).where(TickState.fleet == fleet).values(**values))
