"""Operator actions on one instance's OpenRouter key: stop or resume its spending, set its credit limit.

The key is found through the ledger (its hash is the resource id), so the operator names the
instance, never a secret.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.auth import OperatorAuth
from services.deps import ToolsDep
from services.models import InstanceService
from services.tools.openrouter import OpenRouterProvider
from services.tools.registry import get_tool
from shared.db import SessionDep
from shared.errors import NotFound
from shared.schemas import WireModel

router = APIRouter(prefix="/tools/openrouter", tags=["tools"], dependencies=[OperatorAuth])

InstanceIdPath = Annotated[str, Path(pattern=r"^[0-9a-z]{12}$")]


class KeyDisable(WireModel):
    disabled: bool = True


class KeyLimit(WireModel):
    limit: Annotated[float, Field(gt=0, le=100_000)]


class KeyState(WireModel):
    instance_id: str
    resource_id: str
    disabled: bool | None = None
    limit: float | None = None


async def active_key_hash(session: AsyncSession, *, instance_id: str) -> str:
    resource_id = await session.scalar(
        select(InstanceService.resource_id).where(
            InstanceService.instance_id == instance_id,
            InstanceService.tool_id == "openrouter",
            InstanceService.status == "active",
        )
    )
    if resource_id is None:
        raise NotFound(f"instance {instance_id} has no active openrouter key")
    return resource_id


def _openrouter(tools: ToolsDep) -> OpenRouterProvider:
    provider = get_tool(tools, "openrouter")
    assert isinstance(provider, OpenRouterProvider)
    return provider


@router.post("/{instance_id}/disable", response_model=KeyState)
async def disable(
    instance_id: InstanceIdPath, body: KeyDisable, session: SessionDep, tools: ToolsDep
) -> KeyState:
    """Stop (or with `disabled: false`, resume) spending on the instance's key without deleting it."""
    provider = _openrouter(tools)
    key_hash = await active_key_hash(session, instance_id=instance_id)
    await provider.disable(key_hash, body.disabled)
    return KeyState(instance_id=instance_id, resource_id=key_hash, disabled=body.disabled)


@router.post("/{instance_id}/top-up", response_model=KeyState)
async def top_up(
    instance_id: InstanceIdPath, body: KeyLimit, session: SessionDep, tools: ToolsDep
) -> KeyState:
    """Set a new credit limit (USD) on the instance's key."""
    provider = _openrouter(tools)
    key_hash = await active_key_hash(session, instance_id=instance_id)
    await provider.top_up(key_hash, body.limit)
    return KeyState(instance_id=instance_id, resource_id=key_hash, limit=body.limit)
