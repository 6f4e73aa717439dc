"""The proxy's own answers: info, tools provisioned on demand, credits, self-info. Mail and SMS calls
live in `mail.py` and `sms.py`."""

from __future__ import annotations

from typing import Any

from services.config import Settings
from services.ledger import service as ledger
from services.proxy.resources import Owned, Sessionmaker, body_of, call, owned, vendor
from services.tools.base import ToolProvider
from shared.auth import SecretBox
from shared.errors import Conflict, NotFound, Unavailable

# The proxy's names for the tools an instance may provision on demand.
ON_DEMAND = {"email": ("agentmail", "email"), "sms": ("telnyx", "phone")}


def info(resources: Owned) -> dict[str, Any]:
    return {"instanceId": resources.instance_id, "email": resources.email, "phone": resources.phone}


async def provision(
    sessionmaker: Sessionmaker, *, tools: dict[str, ToolProvider], box: SecretBox, instance_id: str, kind: str
) -> dict[str, Any]:
    """Idempotent: `provisioned` is False when the instance already had one."""
    tool_id, field = ON_DEMAND[kind]
    before = await owned(sessionmaker, instance_id)  # an unknown instance is a 404 first
    if tool_id not in tools:
        raise Unavailable(f"{kind} is not configured on this deployment", retry_after=60)
    existing = before.email if kind == "email" else before.phone
    if existing is not None:
        return {field: existing, "provisioned": False}
    await ledger.provision_tool(
        sessionmaker, tools=tools, box=box, instance_id=instance_id, tool_id=tool_id, reveal=False
    )
    after = await owned(sessionmaker, instance_id)
    return {field: after.email if kind == "email" else after.phone, "provisioned": True}


async def unprovision(
    sessionmaker: Sessionmaker, *, tools: dict[str, ToolProvider], box: SecretBox, instance_id: str, kind: str
) -> dict[str, Any]:
    tool_id, field = ON_DEMAND[kind]
    before = await owned(sessionmaker, instance_id)  # an unknown instance is a 404 first
    if tool_id not in tools:
        raise Unavailable(f"{kind} is not configured on this deployment", retry_after=60)
    existing = before.email if kind == "email" else before.phone
    resource_id = before.email if kind == "email" else before.phone_resource_id
    if existing is None or resource_id is None:
        return {field: None, "unprovisioned": False, "reason": f"no {field} to release"}
    await ledger.destroy_tool(
        sessionmaker, tools=tools, box=box, instance_id=instance_id, tool_id=tool_id, resource_id=resource_id
    )
    return {field: existing, "unprovisioned": True}


def self_info(resources: Owned) -> dict[str, Any]:
    image = resources.runtime_image
    # The version is the image's tag (`…/runtime:1.4.2` → `1.4.2`); templates do not exist yet.
    tail = image.rsplit("/", 1)[-1] if image else ""
    version = tail.split(":", 1)[1] if ":" in tail else None
    return {"runtimeImage": image, "runtimeVersion": version, "templateVersion": None}


async def credits(tools: dict[str, ToolProvider], resources: Owned) -> dict[str, Any]:
    key = await _key(tools, resources)
    return {
        "limit": key.get("limit"),
        "usage": key.get("usage"),
        "remaining": key.get("limit_remaining"),
        "limitReset": key.get("limit_reset"),
    }


async def top_up(tools: dict[str, ToolProvider], resources: Owned, settings: Settings) -> dict[str, Any]:
    """Raise the key's limit by the increment, up to the cap; 409 once it is there."""
    key = await _key(tools, resources)
    previous = float(key.get("limit") or 0.0)
    cap = settings.proxy_credits_cap
    if previous >= cap:
        raise Conflict(f"credits are at the cap of {cap:g}; ask a person for more")
    new_limit = min(previous + settings.proxy_credits_increment, cap)
    _, client = vendor(tools, "openrouter", "credits")
    assert resources.key_hash is not None  # _key checked it
    response = await call(
        client,
        "PATCH",
        f"/keys/{resources.key_hash}",
        what="top up credits",
        json={"limit": new_limit},
        idempotent=True,
    )
    if not response.is_success:
        raise Unavailable(f"the credit provider answered {response.status_code}", retry_after=30)
    return {"ok": True, "previousLimit": previous, "newLimit": new_limit}


async def _key(tools: dict[str, ToolProvider], resources: Owned) -> dict[str, Any]:
    _, client = vendor(tools, "openrouter", "credits")
    if resources.key_hash is None:
        raise NotFound("this instance has no OpenRouter key")
    response = await call(client, "GET", f"/keys/{resources.key_hash}", what="read credits")
    answer = body_of(response)
    data = answer.get("data") if isinstance(answer, dict) else None
    if not response.is_success or not isinstance(data, dict):
        raise Unavailable(f"the credit provider answered {response.status_code}", retry_after=30)
    return data
