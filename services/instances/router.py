from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from services.auth import OperatorAuth
from services.deps import BoxDep, CreateWorkersDep, PlatformsDep, SessionmakerDep, SettingsDep, ToolsDep
from services.instances import create as create_service
from services.instances import service as instances_service
from services.instances.schemas import Instance, InstancePage
from shared.db import SessionDep
from shared.schemas import (
    ConfigureRequest,
    InstanceAccepted,
    InstanceCreate,
    InstanceDestroyed,
    OperationResult,
    RedeployRequest,
)

router = APIRouter(tags=["instances"], dependencies=[OperatorAuth])

InstanceIdPath = Annotated[str, Path(pattern=r"^[0-9a-z]{12}$")]
InstanceState = Annotated[str | None, Query(pattern=r"^(queued|creating|active|destroying|failed)$")]
Cursor = Annotated[str | None, Query(pattern=r"^[0-9a-z]{12}$")]
Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/instances", response_model=InstancePage)
async def list_instances(
    session: SessionDep, state: InstanceState = None, after: Cursor = None, limit: Limit = 100
) -> InstancePage:
    """Instances with their platform ids and whole tool ledger, by id; never env values."""
    return await instances_service.list_instances(session, state=state, after=after, limit=limit)


@router.get("/instances/{instance_id}", response_model=Instance)
async def get_instance(instance_id: InstanceIdPath, session: SessionDep) -> Instance:
    """One instance with its platform ids and whole tool ledger; never env values."""
    return await instances_service.get_instance(session, instance_id=instance_id)


@router.post("/create-instance", response_model=InstanceAccepted, status_code=status.HTTP_202_ACCEPTED)
async def create(
    body: InstanceCreate,
    response: Response,
    sessionmaker: SessionmakerDep,
    tools: ToolsDep,
    box: BoxDep,
    settings: SettingsDep,
    workers: CreateWorkersDep,
) -> InstanceAccepted:
    """Accept a create (202, phase `queued`): services' workers make it; `/status/batch` reports its
    phase. A repeat answers the current phase, never a second create."""
    accepted, new = await create_service.accept_create(
        sessionmaker, tools=tools, box=box, settings=settings, body=body
    )
    if new:
        workers.wake()
    # The token is handed out once: no cache may keep the answer that carries it.
    response.headers["Cache-Control"] = "no-store"
    return accepted


@router.delete("/destroy/{instance_id}", response_model=InstanceDestroyed)
async def destroy(
    instance_id: InstanceIdPath, sessionmaker: SessionmakerDep, platforms: PlatformsDep, tools: ToolsDep
) -> InstanceDestroyed:
    """Tear down an instance: its tools, its platform resources, then its rows. Idempotent."""
    return await instances_service.destroy_instance(
        sessionmaker, platforms=platforms, tools=tools, instance_id=instance_id
    )


@router.post("/configure/{instance_id}", response_model=OperationResult)
async def configure(
    instance_id: InstanceIdPath, body: ConfigureRequest, session: SessionDep, platforms: PlatformsDep
) -> OperationResult:
    """Upsert env vars of an instance (no redeploy unless asked)."""
    return await instances_service.configure_instance(
        session, platforms=platforms, instance_id=instance_id, body=body
    )


@router.post("/redeploy/{instance_id}", response_model=OperationResult)
async def redeploy(
    instance_id: InstanceIdPath,
    session: SessionDep,
    platforms: PlatformsDep,
    body: RedeployRequest | None = None,
) -> OperationResult:
    """Redeploy an instance, or roll it to a new image."""
    return await instances_service.redeploy_instance(
        session, platforms=platforms, instance_id=instance_id, body=body or RedeployRequest()
    )
