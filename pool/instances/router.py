from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from pool.auth import OperatorAuth
from pool.claims.schemas import OWNER_ID_PATTERN
from pool.deps import PoolDep
from pool.instances import clone, service, upgrade
from pool.instances.schemas import (
    Agent,
    Cloned,
    CountBody,
    Drained,
    Instance,
    PoolInfo,
    PoolStatus,
    Removed,
    Replenished,
    Upgraded,
)
from pool.templates import sync as template_sync
from pool.templates.schemas import SyncOutcome
from shared.db import SessionDep
from shared.health import app_version

router = APIRouter(prefix="/api/pool", tags=["operator"], dependencies=[OperatorAuth])
metrics_router = APIRouter(tags=["metrics"])
# Open like `/version`: the original system's landing site polls it to label its environment.
public_router = APIRouter(prefix="/api/pool", tags=["public"])

InstanceIdPath = Annotated[str, Path(pattern=r"^[0-9a-z]{12}$")]
OwnerIdQuery = Annotated[str | None, Query(alias="ownerId", pattern=OWNER_ID_PATTERN)]


@router.get("/counts")
async def counts(session: SessionDep) -> dict[str, int]:
    """Number of instances in every status (all statuses always present)."""
    return await service.count_instances(session)


@router.get("/agents", response_model=list[Agent])
async def agents(session: SessionDep, owner_id: OwnerIdQuery = None) -> list[Agent]:
    """Instances that carry an agent: claimed, pending acceptance, or crashed. With `ownerId`: that
    owner's live agents (claimed, pending acceptance, or being claimed), what its quota counts."""
    rows = await service.list_agents(session, owner_id=owner_id)
    if owner_id is None:
        return [Agent.model_validate(row) for row in rows]
    # A row still being claimed names its owner only once the claim succeeds.
    return [Agent.model_validate(row).model_copy(update={"owner_id": owner_id}) for row in rows]


@router.get("/instances", response_model=list[Instance])
async def instances(session: SessionDep) -> list[Instance]:
    """Every instance the pool knows."""
    return [Instance.model_validate(row) for row in await service.list_instances(session)]


@router.get("/status", response_model=PoolStatus)
async def status(session: SessionDep, pool: PoolDep) -> PoolStatus:
    """Counts, target, every instance, and the reconcile loop's health and backoff."""
    return await service.pool_status(session, pool["settings"])


@router.post("/replenish", response_model=Replenished)
async def replenish(body: CountBody, pool: PoolDep) -> Replenished:
    """Create `count` instances now (bounded by POOL_MAX_TOTAL)."""
    return await service.replenish(pool, body.count)


@router.post("/drain", response_model=Drained)
async def drain(body: CountBody, pool: PoolDep) -> Drained:
    """Destroy up to `count` unclaimed instances, idle ones first."""
    return await service.drain(pool, body.count)


@router.delete("/instances/{instance_id}", response_model=Removed)
async def kill(instance_id: InstanceIdPath, pool: PoolDep) -> Removed:
    """Destroy one instance, whatever its status."""
    return await service.kill_instance(pool, instance_id)


@router.post(
    "/instances/{instance_id}/clone",
    response_model=Cloned,
    responses={
        404: {"description": "No such instance"},
        409: {
            "description": "The source is not claimed, or its runtime or the target's cannot export/import"
        },
        413: {
            "description": "The agent's state is larger than POOL_CLONE_MAX_STATE_BYTES or its runtime's cap"
        },
        502: {
            "description": "Export, import or provision failed (the source untouched, the target recovered)"
        },
        503: {"description": "No idle instance of the source's template (Retry-After says when to retry)"},
    },
)
async def clone_instance(instance_id: InstanceIdPath, pool: PoolDep) -> Cloned:
    """A new agent on an idle instance of the same template, with this agent's state (DESIGN.md §11)."""
    return await clone.clone_instance(pool, instance_id)


@router.delete("/crashed/{instance_id}", response_model=Removed)
async def dismiss(instance_id: InstanceIdPath, pool: PoolDep) -> Removed:
    """Dismiss (destroy) a crashed instance."""
    return await service.dismiss_crashed(pool, instance_id)


@router.post("/recheck/{instance_id}")
async def recheck(instance_id: InstanceIdPath, pool: PoolDep) -> dict[str, object]:
    """Observe one instance now and apply what the observation says."""
    return await service.recheck(pool, instance_id)


@router.post(
    "/instances/{instance_id}/sync",
    response_model=SyncOutcome,
    responses={
        409: {"description": "Not a claimed agent, no capability, or no instructions"},
        502: {"description": "The instance did not answer"},
    },
)
async def sync(instance_id: InstanceIdPath, pool: PoolDep) -> SyncOutcome:
    """Push its template's current instructions to one claimed agent, through the running instance."""
    return await template_sync.sync_instance(pool, instance_id)


@router.post(
    "/instances/{instance_id}/upgrade",
    response_model=Upgraded,
    responses={
        409: {"description": "Not an agent, or already on its template's current version"},
        502: {"description": "Services could not redeploy it; nothing recorded"},
    },
)
async def upgrade_instance(instance_id: InstanceIdPath, pool: PoolDep) -> Upgraded:
    """Roll one agent to its template's current version through services' redeploy (its image)."""
    return await upgrade.upgrade_instance(pool, instance_id)


@router.post("/reconcile")
async def reconcile(pool: PoolDep) -> dict[str, object]:
    """Run one reconcile tick now."""
    return await service.reconcile(pool)


@metrics_router.get("/metrics", response_class=Response)
async def metrics(session: SessionDep, pool: PoolDep) -> Response:
    """Prometheus metrics."""
    body = await service.refresh_metrics(session, pool["metrics"], pool["settings"])
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


@public_router.get("/info", response_model=PoolInfo)
async def info(pool: PoolDep) -> PoolInfo:
    """Which environment this pool serves and its version (nothing secret)."""
    return PoolInfo(environment=pool["settings"].environment, version=app_version())
