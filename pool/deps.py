"""Request dependencies: what the lifespan built, read from `request.state`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypedDict

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pool.claims.db import ClaimsDb
from pool.config import Settings
from pool.instance_client import InstanceClient
from pool.metrics import PoolMetrics
from pool.services_client import ServicesClient
from shared.auth import SecretBox


class PoolState(TypedDict):
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # The claim's hot statements (pool/claims/db.py).
    claims_db: ClaimsDb
    services: ServicesClient
    instances: InstanceClient
    box: SecretBox
    metrics: PoolMetrics
    # The tick runner (None when POOL_TICK_ENABLED is false) and the hook that asks it to refill soon.
    tick: Any
    wake: Callable[[], None]
    # Hooks into the tick's code (None when not wired): run one reconcile now, create `count`
    # instances now (returns their ids), re-observe one instance now.
    run_tick: Callable[[], Awaitable[Any]] | None
    create_instances: Callable[[int], Awaitable[list[str]]] | None
    recheck: Callable[[str], Awaitable[Any]] | None


async def get_pool(request: Request) -> PoolState:
    # async: a sync dependency would be run in the threadpool, a thread hop on every request.
    return PoolState(
        settings=request.state.settings,
        engine=request.state.engine,
        sessionmaker=request.state.sessionmaker,
        claims_db=request.state.claims_db,
        services=request.state.services,
        instances=request.state.instances,
        box=request.state.box,
        metrics=request.state.metrics,
        tick=request.state.tick,
        wake=request.state.wake,
        run_tick=request.state.run_tick,
        create_instances=request.state.create_instances,
        recheck=request.state.recheck,
    )


PoolDep = Annotated[PoolState, Depends(get_pool)]
