"""What belongs to an instance (its inbox, its number, its OpenRouter key), read from the ledger, and
the vendor plugins the proxy calls through. The instance never names its own resources: the proxy
looks them up here, so a request cannot point the proxy at anything else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.models import InstanceInfra, InstanceService
from services.tools.base import ToolProvider
from services.tools.vendor import VendorClient
from shared.errors import NotFound, TransientError, Unavailable, UpstreamError

Sessionmaker = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Owned:
    """The instance's live resources: an address, an E.164 number, an OpenRouter key hash (or None)."""

    instance_id: str
    email: str | None
    phone: str | None
    phone_resource_id: str | None
    key_hash: str | None
    runtime_image: str | None


async def owned(sessionmaker: Sessionmaker, instance_id: str) -> Owned:
    """404 for an instance services does not know (or one being destroyed)."""
    async with sessionmaker() as session:
        infra = await session.get(InstanceInfra, instance_id)
        if infra is None or infra.state == "destroying":
            raise NotFound(f"no instance {instance_id}")
        rows = (
            await session.scalars(
                select(InstanceService).where(
                    InstanceService.instance_id == instance_id, InstanceService.status == "active"
                )
            )
        ).all()
    by_tool = {row.tool_id: row for row in rows}
    mail, sms, keys = by_tool.get("agentmail"), by_tool.get("telnyx"), by_tool.get("openrouter")
    return Owned(
        instance_id=instance_id,
        email=mail.resource_id if mail else None,
        phone=str(sms.resource_meta.get("phone_number") or "") or None if sms else None,
        phone_resource_id=sms.resource_id if sms else None,
        key_hash=keys.resource_id if keys else None,
        runtime_image=infra.runtime_image,
    )


def vendor(tools: dict[str, ToolProvider], tool_id: str, what: str) -> tuple[Any, VendorClient]:
    """The plugin and its client; 503 when the operator has not configured that vendor."""
    provider = tools.get(tool_id)
    client = getattr(provider, "client", None)
    if provider is None or not isinstance(client, VendorClient):
        raise Unavailable(f"{what} is not configured on this deployment", retry_after=60)
    return provider, client


async def call(
    client: VendorClient,
    method: str,
    path: str,
    *,
    what: str,
    json: Any = None,
    params: dict[str, Any] | None = None,
    idempotent: bool | None = None,
) -> httpx.Response:
    """One vendor call; unreachable or 5xx is a 502 (the vendor failed); any other answer is the caller's."""
    try:
        response = await client.request(
            method, path, timeout=client.timeout, json=json, params=params, idempotent=idempotent
        )
    except TransientError as exc:
        raise UpstreamError(f"{what}: the vendor could not be reached") from exc
    if response.status_code >= 500:
        raise UpstreamError(f"{what}: the vendor answered {response.status_code}")
    return response


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"error": f"the vendor answered {response.status_code} without JSON"}
