"""Client for the instance contract (DESIGN.md §4), each call authed with that instance's own token.

Nothing here is retried: a provision is not idempotent, and the claim decides what a failure means.

aiohttp rather than httpx: on this project's 2-core machine httpx cost 1.6-3.3 ms of CPU per call
(more the more keep-alive connections its pool holds, which it scans on every request) against
0.3-0.4 ms for aiohttp, and the provision call sits on every claim (bench/findings.md).
"""

from __future__ import annotations

import json as jsonlib
from typing import Any, Literal

import aiohttp
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
    """One keep-alive connection pool for every instance call (claims and the tick's probes).

    The aiohttp session is opened on first use: it belongs to the event loop that uses it, and
    building the app state stays synchronous. `aclose()` closes it (a no-op if never opened).
    """

    def __init__(self, *, timeout: float = 30.0, max_connections: int = 400) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                timeout=self._timeout,
                # Instances are called directly, as the pool sees them; no proxy from the environment.
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post_or_get(self, method: str, base_url: str, path: str, token: str, json: Any = None) -> Any:
        url = base_url.rstrip("/") + path
        try:
            async with self._client().request(
                method,
                url,
                json=json,
                headers={"Authorization": f"Bearer {token}"},
                # A redirect is an answer the contract does not have: never follow it (nor send
                # the token after it).
                allow_redirects=False,
            ) as response:
                status = response.status
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: an unparsable URL
            raise UpstreamError(f"instance {path} unreachable: {type(exc).__name__}") from exc
        if not 200 <= status < 300:
            text = body.decode("utf-8", errors="replace")
            raise UpstreamError(f"instance {path} answered {status}: {text[:200]}")
        try:
            return jsonlib.loads(body)
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
