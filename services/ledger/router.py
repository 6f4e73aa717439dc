from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from services.auth import OperatorAuth, ToolCallerDep
from services.deps import BoxDep, PlatformsDep, SessionmakerDep, ToolsDep
from services.ledger import openrouter_keys
from services.ledger import service as ledger_service
from services.ledger.schemas import KeyDisable, KeyLimit, KeyState
from shared.db import SessionDep
from shared.schemas import Registry, RegistryTool, ToolGrant

router = APIRouter(tags=["tools"])

InstanceIdPath = Annotated[str, Path(pattern=r"^[0-9a-z]{12}$")]
ToolIdPath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
# A vendor's id (a key hash, an inbox address, a number): no control character (a NUL was a database
# error, a 500), bounded.
ResourceIdPath = Annotated[str, Path(pattern=r"^[^\x00-\x1f\x7f]{1,500}$")]


@router.post("/provision/{instance_id}/{tool_id}", response_model=ToolGrant)
async def provision(
    instance_id: InstanceIdPath,
    tool_id: ToolIdPath,
    caller: ToolCallerDep,
    sessionmaker: SessionmakerDep,
    tools: ToolsDep,
    box: BoxDep,
) -> ToolGrant:
    """Provision one tool for an instance, or return the one it has. The secret goes only to the instance."""
    return await ledger_service.provision_tool(
        sessionmaker,
        tools=tools,
        box=box,
        instance_id=instance_id,
        tool_id=tool_id,
        reveal=caller.is_instance,
    )


@router.delete("/destroy/{instance_id}/{tool_id}/{resource_id}", response_model=ToolGrant)
async def destroy(
    instance_id: InstanceIdPath,
    tool_id: ToolIdPath,
    resource_id: ResourceIdPath,
    caller: ToolCallerDep,
    sessionmaker: SessionmakerDep,
    tools: ToolsDep,
    box: BoxDep,
) -> ToolGrant:
    """Destroy one tool resource of an instance; destroying one already destroyed succeeds."""
    return await ledger_service.destroy_tool(
        sessionmaker, tools=tools, box=box, instance_id=instance_id, tool_id=tool_id, resource_id=resource_id
    )


@router.get("/registry", response_model=Registry, dependencies=[OperatorAuth])
async def registry(tools: ToolsDep, platforms: PlatformsDep) -> Registry:
    """The configured tools and how each is provisioned (never secrets)."""
    return Registry(
        tools=[RegistryTool(id=name, mode=t.mode, env_key=t.env_key) for name, t in sorted(tools.items())],
        # The first platform's provider: what a fleet of one platform always answered.
        platform=platforms.entries[0].provider,
    )


# Operator actions on one instance's OpenRouter key (`openrouter_keys.py`): the operator names the
# instance, never a secret.
@router.post("/tools/openrouter/{instance_id}/disable", response_model=KeyState, dependencies=[OperatorAuth])
async def disable_openrouter_key(
    instance_id: InstanceIdPath, body: KeyDisable, session: SessionDep, tools: ToolsDep
) -> KeyState:
    """Stop (or with `disabled: false`, resume) spending on the instance's key without deleting it."""
    return await openrouter_keys.disable_openrouter_key(
        session, tools=tools, instance_id=instance_id, disabled=body.disabled
    )


@router.post("/tools/openrouter/{instance_id}/top-up", response_model=KeyState, dependencies=[OperatorAuth])
async def top_up_openrouter_key(
    instance_id: InstanceIdPath, body: KeyLimit, session: SessionDep, tools: ToolsDep
) -> KeyState:
    """Set a new credit limit (USD) on the instance's key."""
    return await openrouter_keys.top_up_openrouter_key(
        session, tools=tools, instance_id=instance_id, limit=body.limit
    )
