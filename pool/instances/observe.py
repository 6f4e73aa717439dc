"""`POST /api/pool/internal/observe/{instance_id}`: services relays a platform event (DESIGN.md §13).

The event itself is never trusted: the pool observes the instance (`Tick.observe_soon`, debounced
per instance) and the observation decides, exactly as the tick would. The answer comes at once
(202); the observation follows within the spacing.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from pool.auth import ServicesAuth
from pool.deps import PoolDep
from pool.models import Instance
from shared.errors import NotFound

router = APIRouter(prefix="/api/pool/internal", tags=["internal"], dependencies=[ServicesAuth])

InstanceIdPath = Annotated[str, Path(pattern=r"^[0-9a-z]{12}$")]


class ObserveAccepted(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    instance_id: str
    # started: observed now; queued: one more observation after the one in flight; coalesced: that
    # one more was already asked for.
    observation: Literal["started", "queued", "coalesced"]


@router.post(
    "/observe/{instance_id}",
    status_code=202,
    response_model=ObserveAccepted,
    responses={404: {"description": "No such instance"}},
)
async def observe(instance_id: InstanceIdPath, pool: PoolDep) -> ObserveAccepted:
    """Observe this instance soon (services calls it when a platform event names the instance)."""
    async with pool["sessionmaker"]() as session:
        if await session.get(Instance, instance_id) is None:
            raise NotFound(f"no instance {instance_id}")
    accepted = pool["tick"].observe_soon.ask(instance_id)
    return ObserveAccepted(instance_id=instance_id, observation=accepted)
