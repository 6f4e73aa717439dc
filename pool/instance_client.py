"""The pool's one client for the instance contract (DESIGN.md §4): every call the pool makes to an
instance goes through `InstanceClient`, on one keep-alive aiohttp session.

One method per call; each takes the `timeout` its caller states, covering the whole call (waiting
for a pooled connection included):
- `health`: GET /pool/health (no auth): the starting prober, within the tick's probe timeout;
- `status`: GET /convos/status: the tick and the prober (probe timeout), a claim's recovery
  (POOL_CLAIM_PROVISION_TIMEOUT_SECONDS);
- `provision`: POST /pool/provision: the claim (POOL_CLAIM_PROVISION_TIMEOUT_SECONDS);
- `reset`: POST /convos/reset: a claim's recovery (POOL_CLAIM_PROVISION_TIMEOUT_SECONDS);
- `capabilities`: GET /pool/health's `capabilities` (no auth): a clone or a sync, within its timeout;
- `export_state` / `import_state`: POST /convos/export and /convos/import: a clone
  (POOL_CLAIM_PROVISION_TIMEOUT_SECONDS each), answers read up to POOL_CLONE_MAX_STATE_BYTES;
- `set_instructions`: POST /convos/instructions: a template sync (POOL_SYNC_TIMEOUT_SECONDS).
`/convos/*` and `/pool/provision` are authed with that instance's own gateway token. Nothing is
retried: a provision is not idempotent, the claim decides what a failure means, and the tick's
next pass is the tick's retry.

aiohttp rather than httpx: on this project's 2-core machine httpx cost 1.6-3.3 ms of CPU per call
(more the more keep-alive connections its pool holds, which it scans on every request) against
0.3-0.4 ms for aiohttp, and the provision call sits on every claim (bench/findings.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json as jsonlib
import math
from typing import Any, Literal, TypeVar

import aiohttp
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from shared.errors import AppError, PayloadTooLarge, UpstreamError
from shared.instance_health import MAX_BODY, AnswerTooLarge, probe_health, read_capped
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


class Health(_Camel):
    ready: bool
    # Optional routes the runtime serves (DESIGN.md §4); a runtime that predates them announces none.
    capabilities: list[str] = []


class StateArchive(_Camel):
    """An agent's exported state (the reference runtime: its memory as a base64 tar.gz), passed from
    one instance's export to another's import as it is; the pool checks its size and sha256."""

    format: str
    encoding: str
    size: int
    sha256: str
    archive: str


class Imported(_Camel):
    size: int
    sha256: str


# Room for the JSON around an archive's base64 text.
ENVELOPE_BYTES = 1024


def archive_answer_limit(max_state_bytes: int) -> int:
    """The largest export answer that can carry an archive of `max_state_bytes` (base64 is 4/3)."""
    return 4 * math.ceil(max_state_bytes / 3) + ENVELOPE_BYTES


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
                # The contract has no cookies: none kept, none looked up per request.
                cookie_jar=aiohttp.DummyCookieJar(),
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

    async def capabilities(self, base_url: str, *, timeout: float) -> frozenset[str]:
        """What a ready instance announces in `/pool/health`; UpstreamError when it is not ready."""
        body = await self._send("GET", base_url, "/pool/health", None, timeout=timeout)
        health = _parse(Health, "/pool/health", body)
        if not health.ready:
            raise UpstreamError("instance /pool/health answered not ready")
        return frozenset(health.capabilities)

    async def export_state(
        self, base_url: str, token: str, *, max_bytes: int, timeout: float
    ) -> tuple[StateArchive, bytes]:
        """The instance's exported state, checked: at most `max_bytes`, its size and sha256 as
        announced. PayloadTooLarge when it is over our cap or the runtime's own (its 413)."""
        try:
            body = await self._send(
                "POST",
                base_url,
                "/convos/export",
                token,
                timeout=timeout,
                limit=archive_answer_limit(max_bytes),
            )
        except _TooLarge as exc:
            raise PayloadTooLarge(f"the agent's state is too large to clone: {exc.message}") from exc
        state = _parse(StateArchive, "/convos/export", body)
        try:
            archive = base64.b64decode(state.archive, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise UpstreamError("instance /convos/export answered an archive that is not base64") from exc
        if len(archive) > max_bytes:
            raise PayloadTooLarge(
                f"the agent's state is {len(archive)} bytes, over the {max_bytes} a clone takes"
            )
        if len(archive) != state.size or hashlib.sha256(archive).hexdigest() != state.sha256:
            raise UpstreamError(
                "instance /convos/export answered an archive whose size or sha256 does not match"
            )
        return state, archive

    async def import_state(self, base_url: str, token: str, state: StateArchive, *, timeout: float) -> None:
        """Restore `state` into the instance; it must confirm the same size and sha256."""
        payload = state.model_dump(by_alias=True)
        try:
            answer = await self._send(
                "POST", base_url, "/convos/import", token, json=payload, timeout=timeout
            )
        except _TooLarge as exc:
            raise PayloadTooLarge(f"the target refused the agent's state: {exc.message}") from exc
        imported = _parse(Imported, "/convos/import", answer)
        if (imported.size, imported.sha256) != (state.size, state.sha256):
            raise UpstreamError("instance /convos/import confirmed a different archive than the one sent")

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
        self,
        method: str,
        base_url: str,
        path: str,
        token: str | None,
        *,
        json: Any = None,
        timeout: float,
        limit: int = MAX_BODY,
    ) -> bytes:
        """The 2xx answer's body; anything else is an UpstreamError (`_TooLarge` for a 413)."""
        url = base_url.rstrip("/") + path
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        try:
            async with self._client().request(
                method,
                url,
                json=json,
                headers=headers,
                # A redirect is an answer the contract does not have: never follow it (nor
                # send the token after it).
                allow_redirects=False,
                # aiohttp's total covers the whole call: waiting for a pooled connection, the
                # request and reading the body to its end (one timer per call; on the claim path
                # a second, asyncio's, cost as much again).
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                status = response.status
                body = await read_capped(response, limit)
        except AnswerTooLarge as exc:
            if limit != MAX_BODY:
                raise _TooLarge(f"answer larger than {limit} bytes") from exc
            raise UpstreamError(f"instance {path} answered {exc}") from exc
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:  # ValueError: a bad URL
            raise UpstreamError(f"instance {path} unreachable: {type(exc).__name__}") from exc
        if not 200 <= status < 300:
            text = body.decode("utf-8", errors="replace")
            error: type[AppError] = _TooLarge if status == 413 else UpstreamError
            raise error(f"instance {path} answered {status}: {text[:200]}")
        return body


class _TooLarge(UpstreamError):
    """An instance refused a body as too large (413), or answered one past the caller's limit."""


def _parse(model: type[M], path: str, body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise UpstreamError(f"instance {path} answered a non-JSON body") from exc
        raise UpstreamError(
            f"instance {path} answered an unexpected body: {exc.error_count()} errors"
        ) from exc
