"""OpenRouter: one inference key per instance, made with the management key (specs/openrouter.md).

The plaintext key is returned once, by create; it goes straight into the Grant (the ledger encrypts
it) and is registered with the log redactor. Create is not retried: a retry without an idempotency
key could mint a second key; the sweep removes a key whose create answer was lost.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.tools.base import Grant, InventoryItem, ToolContext
from services.tools.vendor import VendorClient, instance_from_name, parse_time, resource_name
from shared.errors import PermanentError, TransientError, UpstreamError
from shared.http import RETRYABLE_STATUS
from shared.logging import get_logger, register_secret

log = get_logger(__name__)
PAGE_SIZE = 100


class OpenRouterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPENROUTER_", extra="ignore")

    management_key: str = ""
    base_url: str = "https://openrouter.ai/api/v1"
    key_limit: float | None = 5.0
    key_limit_reset: str | None = None
    name_prefix: str = "warmpool-"
    timeout_seconds: float = 15.0

    @property
    def configured(self) -> bool:
        return bool(self.management_key)


class OpenRouterError(UpstreamError):
    """Base of OpenRouter failures; never carries the key."""


class OpenRouterAuthError(PermanentError, OpenRouterError):
    """401/403: the management key is wrong or is not a management key."""


class OpenRouterRejected(PermanentError, OpenRouterError):
    """400 and other 4xx: the request itself is wrong."""


class OpenRouterUnavailable(TransientError, OpenRouterError):
    """429 and 5xx: try again later."""


class OpenRouterKey(BaseModel):
    hash: str
    name: str
    disabled: bool = False
    limit: float | None = None
    created_at: str | None = None


class CreatedKey(BaseModel):
    data: OpenRouterKey
    key: str


class KeyEnvelope(BaseModel):
    data: OpenRouterKey


class KeyList(BaseModel):
    data: list[OpenRouterKey]


def error_from(response: httpx.Response, what: str) -> OpenRouterError:
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    detail = f"openrouter {what} answered {response.status_code}: {message}"
    if response.status_code in (401, 403):
        return OpenRouterAuthError(detail)
    if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
        return OpenRouterUnavailable(detail)
    return OpenRouterRejected(detail)


class OpenRouterClient(VendorClient):
    name = "openrouter"

    async def _call(self, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
        response = await self.request(method, url, timeout=self.timeout, **kwargs)
        if not response.is_success:
            raise error_from(response, what)
        return response

    async def create_key(self, *, name: str, limit: float | None, limit_reset: str | None) -> CreatedKey:
        body: dict[str, Any] = {"name": name, "limit": limit}
        if limit_reset:
            body["limit_reset"] = limit_reset
        response = await self._call("POST", "/keys", "create key", json=body)
        return CreatedKey.model_validate(response.json())

    async def delete_key(self, key_hash: str) -> bool:
        """True if deleted, False if it was already gone."""
        response = await self.request("DELETE", f"/keys/{key_hash}", timeout=self.timeout)
        if response.status_code == 404:
            return False
        if not response.is_success:
            raise error_from(response, "delete key")
        return True

    async def update_key(self, key_hash: str, **changes: Any) -> OpenRouterKey:
        # PATCH sets absolute values, so repeating it is harmless: let the base retry it.
        response = await self._call("PATCH", f"/keys/{key_hash}", "update key", json=changes, idempotent=True)
        return KeyEnvelope.model_validate(response.json()).data

    async def list_keys(self) -> list[OpenRouterKey]:
        keys: list[OpenRouterKey] = []
        offset = 0
        while True:
            params = {"include_disabled": "true", "offset": offset}
            response = await self._call("GET", "/keys", "list keys", params=params)
            page = KeyList.model_validate(response.json()).data
            keys.extend(page)
            if len(page) < PAGE_SIZE:
                return keys
            offset += PAGE_SIZE


class OpenRouterProvider:
    name = "openrouter"
    env_key = "OPENROUTER_API_KEY"
    mode = "per-instance"

    def __init__(self, settings: OpenRouterSettings, client: OpenRouterClient) -> None:
        self.settings = settings
        self.client = client

    async def provision(self, instance_id: str) -> Grant:
        name = resource_name(self.settings.name_prefix, instance_id)
        created = await self.client.create_key(
            name=name, limit=self.settings.key_limit, limit_reset=self.settings.key_limit_reset
        )
        register_secret(created.key)
        log.info("tool.openrouter.key_created", instance_id=instance_id, key_hash=created.data.hash)
        return Grant(resource_id=created.data.hash, env_value=created.key, meta={"name": name})

    async def revoke(self, resource_id: str, meta: dict[str, Any]) -> None:
        deleted = await self.client.delete_key(resource_id)
        log.info("tool.openrouter.key_deleted", key_hash=resource_id, already_gone=not deleted)

    async def disable(self, resource_id: str, disabled: bool = True) -> None:
        """Operator action: stop (or resume) spending on one instance's key without deleting it."""
        await self.client.update_key(resource_id, disabled=disabled)

    async def top_up(self, resource_id: str, limit: float) -> None:
        """Operator action: set a new credit limit (USD) on one instance's key."""
        await self.client.update_key(resource_id, limit=limit)

    async def inventory(self) -> list[InventoryItem]:
        prefix = self.settings.name_prefix
        return [
            InventoryItem(
                resource_id=key.hash,
                name=key.name,
                instance_id=instance_from_name(prefix, key.name),
                created_at=parse_time(key.created_at),
            )
            for key in await self.client.list_keys()
            if key.name.startswith(prefix)
        ]

    @classmethod
    def from_settings(cls, settings: OpenRouterSettings, http: httpx.AsyncClient) -> OpenRouterProvider:
        register_secret(settings.management_key)
        auth = {"Authorization": f"Bearer {settings.management_key}"}
        return cls(
            settings,
            OpenRouterClient(http, base_url=settings.base_url, auth=auth, timeout=settings.timeout_seconds),
        )


def build_openrouter(context: ToolContext) -> OpenRouterProvider | None:
    """The provider, or None when no management key is configured (then it is absent from /registry)."""
    settings = OpenRouterSettings()
    return OpenRouterProvider.from_settings(settings, context.http) if settings.configured else None
