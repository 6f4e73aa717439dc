"""The pool's one client for the instance contract (DESIGN.md §4): every call the pool makes to an
instance goes through `InstanceClient`, on one keep-alive aiohttp session.

One method per call; each takes the `timeout` its caller states, covering the whole call (waiting
for a pooled connection included):
- `health`: GET /pool/health (no auth): the starting prober, within the tick's probe timeout;
- `status`: GET /convos/status: the tick and the prober (probe timeout), a claim's recovery
  (POOL_CLAIM_PROVISION_TIMEOUT_SECONDS);
- `provision`: POST /pool/provision: the claim (POOL_CLAIM_PROVISION_TIMEOUT_SECONDS);
- `reset`: POST /convos/reset: a claim's recovery (POOL_CLAIM_PROVISION_TIMEOUT_SECONDS);
- `capabilities`: GET /pool/health's optional routes, and `set_instructions`: POST
  /convos/instructions: a template sync (POOL_SYNC_TIMEOUT_SECONDS).
`/convos/*` and `/pool/provision` are authed with that instance's own gateway token. Nothing is
retried: a provision is not idempotent, the claim decides what a failure means, and the tick's
next pass is the tick's retry.

aiohttp rather than httpx: on this project's 2-core machine httpx cost 1.6-3.3 ms of CPU per call
(more the more keep-alive connections its pool holds, which it scans on every request) against
0.3-0.4 ms for aiohttp, and the provision call sits on every claim (bench/findings.md).
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from typing import Any, Literal, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from shared.errors import UpstreamError
from shared.instance_health import AnswerTooLarge, probe_health, read_capped
from shared.schemas import HealthProbe


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


class Capabilities(_Camel):
    # A runtime from before capabilities has none: it serves only the contract's required routes.
    capabilities: list[str] = []


class InstructionsSet(_Camel):
    conversation_id: str


M = TypeVar("M", bound=BaseModel)


class InstanceClient:
    """One keep-alive connection pool for every instance call (claims, the prober and the tick).

    The aiohttp session is opened on first use: it belongs to the event loop that uses it, and
    building the app state stays synchronous. `aclose()` closes it (a no-op if never opened).
    """

    def __init__(self, *, max_connections: int = 400) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0),
                # Instances are called directly, as the pool sees them; no proxy or ~/.netrc
                # from the environment (shared.instance_health says what that costs).
                trust_env=False,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def health(self, base_url: str, *, timeout: float) -> HealthProbe:
        """`GET /pool/health`; never raises (a failed probe is an answer: `ok` False)."""
        return await probe_health(self._client(), base_url, timeout)

    async def status(self, base_url: str, token: str, *, timeout: float) -> ConvosStatus:
        body = await self._send("GET", base_url, "/convos/status", token, timeout=timeout)
        return _parse(ConvosStatus, "/convos/status", body)

    async def provision(
        self, base_url: str, token: str, body: ProvisionRequest, *, timeout: float
    ) -> Provisioned:
        payload = body.model_dump(by_alias=True, exclude_none=True)
        answer = await self._send("POST", base_url, "/pool/provision", token, json=payload, timeout=timeout)
        return _parse(Provisioned, "/pool/provision", answer)

    async def reset(self, base_url: str, token: str, *, timeout: float) -> None:
        body = await self._send("POST", base_url, "/convos/reset", token, timeout=timeout)
        try:
            jsonlib.loads(body)  # the answer carries nothing, but it must be the contract's JSON
        except ValueError as exc:
            raise UpstreamError("instance /convos/reset answered a non-JSON body") from exc

    async def capabilities(self, base_url: str, *, timeout: float) -> list[str]:
        """The optional routes a ready instance announces in `/pool/health` (DESIGN.md §4); an
        instance that is not ready, or does not answer, is an UpstreamError."""
        body = await self._send("GET", base_url, "/pool/health", None, timeout=timeout)
        return _parse(Capabilities, "/pool/health", body).capabilities

    async def set_instructions(self, base_url: str, token: str, instructions: str, *, timeout: float) -> str:
        """Replace the bound agent's instructions in place; the conversation it is bound to."""
        answer = await self._send(
            "POST",
            base_url,
            "/convos/instructions",
            token,
            json={"instructions": instructions},
            timeout=timeout,
        )
        return _parse(InstructionsSet, "/convos/instructions", answer).conversation_id

    async def _send(
        self, method: str, base_url: str, path: str, token: str | None, *, json: Any = None, timeout: float
    ) -> bytes:
        """The 2xx answer's body; anything else is an UpstreamError. No token: an unauthenticated call."""
        url = base_url.rstrip("/") + path
        try:
            async with (
                asyncio.timeout(timeout),
                self._client().request(
                    method,
                    url,
                    json=json,
                    headers={"Authorization": f"Bearer {token}"} if token is not None else None,
                    # A redirect is an answer the contract does not have: never follow it (nor
                    # send the token after it).
                    allow_redirects=False,
                ) as response,
            ):
                status = response.status
                body = await read_capped(response)
        except AnswerTooLarge as exc:
            raise UpstreamError(f"instance {path} answered {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:  # ValueError: a bad URL
            raise UpstreamError(f"instance {path} unreachable: {type(exc).__name__}") from exc
        if not 200 <= status < 300:
            text = body.decode("utf-8", errors="replace")
            raise UpstreamError(f"instance {path} answered {status}: {text[:200]}")
        return body


def _parse(model: type[M], path: str, body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise UpstreamError(f"instance {path} answered a non-JSON body") from exc
        raise UpstreamError(
            f"instance {path} answered an unexpected body: {exc.error_count()} errors"
        ) from exc
