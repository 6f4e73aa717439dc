"""What services needs from a tool provider (OpenRouter, AgentMail, Telnyx, pooled secrets).

`provision` must be safe to repeat for the same instance (it returns or re-finds the resource),
and `revoke` of a resource that is already gone succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from shared.auth import SecretBox


@dataclass(frozen=True)
class ToolContext:
    """What services' lifespan made once and hands every tool builder, so a tool opens no engine
    or HTTP client of its own: one connection pool and one client for the whole app."""

    settings: Settings
    http: httpx.AsyncClient
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox


@dataclass
class Grant:
    resource_id: str
    env_value: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class InventoryItem:
    resource_id: str
    name: str
    meta: dict[str, Any] = field(default_factory=dict)
    # Which instance the resource was made for (parsed from its name), and when the provider made it:
    # the sweep only removes unknown resources older than its grace period.
    instance_id: str | None = None
    created_at: datetime | None = None


class ToolProvider(Protocol):
    name: str
    env_key: str
    # "per-instance" (one resource each) or "pooled" (assigned from an operator-supplied pool)
    mode: str

    async def provision(self, instance_id: str) -> Grant: ...

    async def revoke(self, resource_id: str, meta: dict[str, Any]) -> None: ...


@runtime_checkable
class InventoryProvider(Protocol):
    """Optional: a provider that can list what exists at the vendor, for the sweep."""

    name: str

    async def inventory(self) -> list[InventoryItem]: ...

    async def revoke(self, resource_id: str, meta: dict[str, Any]) -> None: ...
