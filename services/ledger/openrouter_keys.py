"""The operator's actions on an instance's OpenRouter key. The key is found through the instance's
ledger row (its hash is the resource id), so the operator names the instance, never a secret.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ledger.schemas import KeyState
from services.models import InstanceService
from services.tools.base import ToolProvider
from services.tools.openrouter import OpenRouterProvider
from services.tools.registry import get_tool
from shared.errors import NotFound


async def _openrouter_key(
    session: AsyncSession, *, tools: dict[str, ToolProvider], instance_id: str
) -> tuple[OpenRouterProvider, str]:
    """The provider and the hash of the instance's active key (its resource id): never the secret."""
    provider = get_tool(tools, "openrouter")
    assert isinstance(provider, OpenRouterProvider)
    resource_id = await session.scalar(
        select(InstanceService.resource_id).where(
            InstanceService.instance_id == instance_id,
            InstanceService.tool_id == "openrouter",
            InstanceService.status == "active",
        )
    )
    if resource_id is None:
        raise NotFound(f"instance {instance_id} has no active openrouter key")
    return provider, resource_id


async def disable_openrouter_key(
    session: AsyncSession, *, tools: dict[str, ToolProvider], instance_id: str, disabled: bool
) -> KeyState:
    provider, key_hash = await _openrouter_key(session, tools=tools, instance_id=instance_id)
    await provider.disable(key_hash, disabled)
    return KeyState(instance_id=instance_id, resource_id=key_hash, disabled=disabled)


async def top_up_openrouter_key(
    session: AsyncSession, *, tools: dict[str, ToolProvider], instance_id: str, limit: float
) -> KeyState:
    provider, key_hash = await _openrouter_key(session, tools=tools, instance_id=instance_id)
    await provider.top_up(key_hash, limit)
    return KeyState(instance_id=instance_id, resource_id=key_hash, limit=limit)
