"""Client for the instance contract (DESIGN.md §4), each call authed with that instance's own token.

Nothing here is retried: a provision is not idempotent, and the claim decides what a failure means.
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from shared.errors import UpstreamError


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Provisioned(_Camel):
    conversation_id: str
    invite_url: str
    joined: bool
    status: Literal["created", "joined", "pending_acceptance"]


class ConvosStatus(_Camel):
    conversation_id: str | None = None
    pending: bool = False
    clean: bool


class ProvisionRequest(_Camel):
    agent_name: str
    instructions: str
    join_url: str | None = None
    profile_image: str | None = None
    metadata: dict[str, Any] | None = None


class InstanceClient:
    def __init__(self, client: httpx.AsyncClient, *, timeout: float = 30.0) -> None:
        self._client = client
        self._timeout = timeout

    async def _post_or_get(self, method: str, base_url: str, path: str, token: str, json: Any = None) -> Any:
        url = base_url.rstrip("/") + path
        try:
            response = await self._client.request(
                method,
                url,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(f"instance {path} unreachable: {type(exc).__name__}") from exc
        if not response.is_success:
            raise UpstreamError(f"instance {path} answered {response.status_code}: {response.text[:200]}")
        try:
            return response.json()
        except ValueError as exc:
            raise UpstreamError(f"instance {path} answered a non-JSON body") from exc

    async def provision(self, base_url: str, token: str, body: ProvisionRequest) -> Provisioned:
        data = await self._post_or_get(
            "POST", base_url, "/pool/provision", token, json=body.model_dump(by_alias=True, exclude_none=True)
        )
        try:
            return Provisioned.model_validate(data)
        except ValidationError as exc:
            raise UpstreamError(
                f"instance /pool/provision answered an unexpected body: {exc.error_count()} errors"
            ) from exc

    async def status(self, base_url: str, token: str) -> ConvosStatus:
        data = await self._post_or_get("GET", base_url, "/convos/status", token)
        try:
            return ConvosStatus.model_validate(data)
        except ValidationError as exc:
            raise UpstreamError("instance /convos/status answered an unexpected body") from exc

    async def reset(self, base_url: str, token: str) -> None:
        await self._post_or_get("POST", base_url, "/convos/reset", token)
