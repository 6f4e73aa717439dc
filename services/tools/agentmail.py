"""AgentMail: one inbox per instance (specs/agentmail.md).

Create carries a `client_id` derived from the instance, so AgentMail answers a repeated create with
the inbox it already made: retries after a timeout are safe and never make a second inbox.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.tools.base import Grant, InventoryItem, ToolContext
from services.tools.vendor import VendorClient, instance_from_name, parse_time, resource_name
from shared.errors import PermanentError, TransientError, UpstreamError
from shared.http import RETRYABLE_STATUS
from shared.logging import get_logger, register_secret

log = get_logger(__name__)


class AgentMailSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTMAIL_", extra="ignore")

    api_key: str = ""
    base_url: str = "https://api.agentmail.to/v0"
    # Must be verified at AgentMail; empty means their default (agentmail.to).
    domain: str = ""
    name_prefix: str = "warmpool-"
    timeout_seconds: float = 15.0
    # How many other usernames to try when ours is taken by someone else.
    username_attempts: int = 3

    @property
    def configured(self) -> bool:
        return bool(self.api_key)


class AgentMailError(UpstreamError):
    """Base of AgentMail failures."""


class AgentMailAuthError(PermanentError, AgentMailError):
    """401, or a 403 permission code: the API key is wrong or lacks rights."""


class AgentMailUsernameTaken(PermanentError, AgentMailError):
    """403 `resource_taken`: the username belongs to another inbox."""


class AgentMailRejected(PermanentError, AgentMailError):
    """400/422 and other refusals (bad domain, plan limit)."""


class AgentMailUnavailable(TransientError, AgentMailError):
    """429 and 5xx."""


class Inbox(BaseModel):
    inbox_id: str
    client_id: str | None = None
    created_at: str | None = None


class InboxPage(BaseModel):
    inboxes: list[Inbox]
    next_page_token: str | None = None


def error_from(response: httpx.Response, what: str) -> AgentMailError:
    try:
        body = response.json()
        code, message = str(body.get("code") or ""), str(body.get("message") or "")
    except (ValueError, AttributeError):
        code, message = "", response.text[:200]
    detail = f"agentmail {what} answered {response.status_code} {code}: {message}"
    status = response.status_code
    if code == "resource_taken":
        return AgentMailUsernameTaken(detail)
    if status in RETRYABLE_STATUS or status >= 500:
        return AgentMailUnavailable(detail)
    if status == 401 or code in ("missing_permission", "forbidden", "unrestricted_key_required"):
        return AgentMailAuthError(detail)
    return AgentMailRejected(detail)


class AgentMailClient(VendorClient):
    name = "agentmail"

    async def create_inbox(self, *, username: str, domain: str, client_id: str) -> Inbox:
        body: dict[str, Any] = {"username": username, "client_id": client_id}
        if domain:
            body["domain"] = domain
        # client_id makes the POST idempotent at AgentMail, so the base may retry it.
        response = await self.request("POST", "/inboxes", timeout=self.timeout, json=body, idempotent=True)
        if not response.is_success:
            raise error_from(response, "create inbox")
        return Inbox.model_validate(response.json())

    async def delete_inbox(self, inbox_id: str) -> bool:
        response = await self.request("DELETE", f"/inboxes/{quote(inbox_id, safe='@')}", timeout=self.timeout)
        if response.status_code == 404:
            return False
        if not response.is_success:
            raise error_from(response, "delete inbox")
        return True

    async def list_inboxes(self) -> list[Inbox]:
        inboxes: list[Inbox] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if token:
                params["page_token"] = token
            response = await self.request("GET", "/inboxes", timeout=self.timeout, params=params)
            if not response.is_success:
                raise error_from(response, "list inboxes")
            page = InboxPage.model_validate(response.json())
            inboxes.extend(page.inboxes)
            if not page.next_page_token:
                return inboxes
            token = page.next_page_token


class AgentMailProvider:
    name = "agentmail"
    env_key = "AGENTMAIL_INBOX"
    mode = "per-instance"

    def __init__(self, settings: AgentMailSettings, client: AgentMailClient) -> None:
        self.settings = settings
        self.client = client

    async def provision(self, instance_id: str) -> Grant:
        client_id = resource_name(self.settings.name_prefix, instance_id)
        username = client_id
        for attempt in range(self.settings.username_attempts + 1):
            try:
                inbox = await self.client.create_inbox(
                    username=username, domain=self.settings.domain, client_id=client_id
                )
            except AgentMailUsernameTaken:
                if attempt == self.settings.username_attempts:
                    raise
                log.warning("tool.agentmail.username_taken", instance_id=instance_id, username=username)
                username = f"{client_id}-{secrets.token_hex(3)}"
                continue
            log.info("tool.agentmail.inbox_created", instance_id=instance_id, inbox_id=inbox.inbox_id)
            return Grant(resource_id=inbox.inbox_id, env_value=inbox.inbox_id, meta={"client_id": client_id})
        raise AssertionError("unreachable")

    async def revoke(self, resource_id: str, meta: dict[str, Any]) -> None:
        deleted = await self.client.delete_inbox(resource_id)
        log.info("tool.agentmail.inbox_deleted", inbox_id=resource_id, already_gone=not deleted)

    async def inventory(self) -> list[InventoryItem]:
        prefix = self.settings.name_prefix
        return [
            InventoryItem(
                resource_id=inbox.inbox_id,
                name=inbox.client_id or "",
                instance_id=instance_from_name(prefix, inbox.client_id),
                created_at=parse_time(inbox.created_at),
            )
            for inbox in await self.client.list_inboxes()
            if (inbox.client_id or "").startswith(prefix)
        ]

    @classmethod
    def from_settings(cls, settings: AgentMailSettings, http: httpx.AsyncClient) -> AgentMailProvider:
        register_secret(settings.api_key)
        auth = {"Authorization": f"Bearer {settings.api_key}"}
        return cls(
            settings,
            AgentMailClient(http, base_url=settings.base_url, auth=auth, timeout=settings.timeout_seconds),
        )


def build_agentmail(context: ToolContext) -> AgentMailProvider | None:
    settings = AgentMailSettings()
    return AgentMailProvider.from_settings(settings, context.http) if settings.configured else None
