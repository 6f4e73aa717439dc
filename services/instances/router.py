from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from services.auth import OperatorAuth
from services.deps import BoxDep, PlatformDep, SessionmakerDep, SettingsDep, ToolsDep
from services.instances import service as instances_service
from shared.db import SessionDep
from shared.schemas import (
    ConfigureRequest,
    InstanceCreate,
    InstanceCreated,
    InstanceDestroyed,
    OperationResult,
    RedeployRequest,
)

router = APIRouter(tags=["instances"], dependencies=[OperatorAuth])

InstanceIdPath = Annotated[str, Path(pattern=r"^[0-9a-z]{12}$")]


@router.post("/create-instance", response_model=InstanceCreated)
async def create(
    body: InstanceCreate,
    sessionmaker: SessionmakerDep,
    platform: PlatformDep,
    tools: ToolsDep,
    box: BoxDep,
    settings: SettingsDep,
) -> InstanceCreated:
    """Create the platform service and base tools of an instance; idempotent on instanceId."""
    return await instances_service.create_instance(
        sessionmaker, platform=platform, tools=tools, box=box, settings=settings, body=body
    )


@router.delete("/destroy/{instance_id}", response_model=InstanceDestroyed)
async def destroy(
    instance_id: InstanceIdPath, sessionmaker: SessionmakerDep, platform: PlatformDep, tools: ToolsDep
) -> InstanceDestroyed:
    """Tear down an instance: its tools, its platform resources, then its rows. Idempotent."""
    return await instances_service.destroy_instance(
        sessionmaker, platform=platform, tools=tools, instance_id=instance_id
    )


@router.post("/configure/{instance_id}", response_model=OperationResult)
async def configure(
    instance_id: InstanceIdPath, body: ConfigureRequest, session: SessionDep, platform: PlatformDep
) -> OperationResult:
    """Upsert env vars of an instance (no redeploy unless asked)."""
    return await instances_service.configure_instance(
        session, platform=platform, instance_id=instance_id, body=body
    )


@router.post("/redeploy/{instance_id}", response_model=OperationResult)
async def redeploy(
    instance_id: InstanceIdPath,
    session: SessionDep,
    platform: PlatformDep,
    body: RedeployRequest | None = None,
) -> OperationResult:
    """Redeploy an instance, or roll it to a new image."""
    return await instances_service.redeploy_instance(
        session, platform=platform, instance_id=instance_id, body=body or RedeployRequest()
    )
