"""Request dependencies: what the lifespan built, read from `request.state`.

The lifespan builds one `PoolState` and yields it twice over: its keys at the top level (read by
the shared dependencies: `shared.db` for sessions, `shared.health`, `pool.auth`) and the object
itself under `pool`, which `get_pool` hands to routes as it is, with nothing copied per request.
"""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pool.activity.recorder import Recorder
from pool.claims.db import ClaimsDb
from pool.claims.dispatcher import Dispatcher
from pool.claims.templates import TemplateChooser
from pool.config import Settings
from pool.instance_client import InstanceClient
from pool.metrics import PoolMetrics
from pool.services_client import ServicesClient
from pool.tick.tick import Tick
from shared.auth import SecretBox


class PoolState(TypedDict):
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # The claim's hot statements (pool/claims/db.py).
    claims_db: ClaimsDb
    # Which template a claim is served from, and its defaults (pool/claims/templates.py).
    templates: TemplateChooser
    # The claim queue's dispatcher and waiters in this replica (pool/claims/dispatcher.py).
    queue: Dispatcher
    services: ServicesClient
    instances: InstanceClient
    box: SecretBox
    metrics: PoolMetrics
    # The claim path's event-log entries and claim outcomes, written off its answer path.
    recorder: Recorder
    # Reconcile now, create now, recheck one instance, refill soon (its loops run only when
    # POOL_TICK_ENABLED; the on-demand methods work on every replica).
    tick: Tick


def lifespan_state(state: PoolState) -> dict[str, Any]:
    """What the lifespan yields (see the module's docstring)."""
    return {**state, "pool": state}


async def get_pool(request: Request) -> PoolState:
    # async: a sync dependency would be run in the threadpool, a thread hop on every request.
    pool: PoolState = request.state.pool
    return pool


PoolDep = Annotated[PoolState, Depends(get_pool)]
