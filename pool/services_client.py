"""Typed client for services' internal API (DESIGN.md §6), one method per route the pool calls.

Error bodies `{"error": "<ClassName>", "detail": ...}` come back as the same `shared.errors` class,
so a `NotFound` raised inside services is a `NotFound` here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from pool.status_batch import Batch
from shared.errors import ERRORS_BY_NAME, AppError, TransientError, Unavailable
from shared.http import HTTP_RETRY, ApiClient, call_timeout, error_from_response
from shared.retry import RetryPolicy
from shared.schemas import (
    InstanceAccepted,
    InstanceCreate,
    InstanceDestroyed,
    OperationResult,
    PlatformList,
    RedeployRequest,
    Registry,
    StatusBatchRequest,
)

Model = TypeVar("Model", bound=BaseModel)
CallRecorder = Callable[[str, str], None]


def error_from_body(response: httpx.Response, what: str) -> AppError:
    try:
        body = response.json()
    except ValueError:
        body = None
    # `kind` names the class; a services release from before it put the class in `error`.
    kind = body.get("kind", body.get("error")) if isinstance(body, dict) else None
    if isinstance(kind, str):
        cls = ERRORS_BY_NAME.get(kind)
        if cls is not None:
            detail = body.get("detail")
            message = detail if isinstance(detail, str) else f"{what}: {detail}"
            if cls is Unavailable:
                return Unavailable(message)
            return cls(message, status_code=response.status_code)
    return error_from_response(response, what)


class ServicesClient(ApiClient):
    name = "services"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        timeout: float,
        record: CallRecorder | None = None,
        retry: RetryPolicy = HTTP_RETRY,
    ) -> None:
        """`timeout`: each call's (`POOL_SERVICES_TIMEOUT_SECONDS`), except `status_batch`, whose
        caller states its own."""
        super().__init__(client, retry=retry)
        self._timeout = timeout
        self._record = record

    async def _call(self, operation: str, method: str, url: str, model: type[Model], **kwargs: Any) -> Model:
        try:
            response = await self.request(method, url, timeout=self._timeout, **kwargs)
        except TransientError:
            self._note(operation, "unreachable")
            raise
        if not response.is_success:
            self._note(operation, "error")
            raise error_from_body(response, f"services {method} {url}")
        self._note(operation, "ok")
        return model.model_validate(response.json())

    async def aclose(self) -> None:
        await self._client.aclose()

    def _note(self, operation: str, outcome: str) -> None:
        if self._record is not None:
            self._record(operation, outcome)

    async def create_instance(self, body: InstanceCreate) -> InstanceAccepted:
        """Hand a create over (services answers 202 at once; `/status/batch` reports its phase).
        Idempotent on instanceId, so retrying the POST cannot create twice. Fields left None are
        not sent: a left-out `tools` means services' default tools."""
        return await self._call(
            "create_instance",
            "POST",
            "/create-instance",
            InstanceAccepted,
            json=body.model_dump(by_alias=True, exclude_none=True),
            idempotent=True,
        )

    async def forward(
        self, method: str, url: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> httpx.Response:
        """One proxied call (pool/callbacks), its answer whatever its status: the instance reads the
        vendor's answer or services' own refusal. Never retried: a send must not go out twice."""
        try:
            response = await self._client.request(
                method, url, json=json, params=params, timeout=call_timeout(self._timeout)
            )
        except httpx.TransportError as exc:
            self._note("proxy", "unreachable")
            raise TransientError(f"{self.name} unreachable: {type(exc).__name__}") from exc
        self._note("proxy", "ok" if response.status_code < 500 else "error")
        return response

    async def destroy_instance(self, instance_id: str) -> InstanceDestroyed:
        return await self._call("destroy_instance", "DELETE", f"/destroy/{instance_id}", InstanceDestroyed)

    async def redeploy_instance(self, instance_id: str, *, image: str | None) -> OperationResult:
        """Redeploy an instance on its own platform, rolled to `image` if given (None: its current
        configuration). One attempt: a redeploy is not idempotent, and the operator who asked sees
        the failure."""
        body = RedeployRequest(image=image).model_dump(by_alias=True, exclude_none=True)
        return await self._call(
            "redeploy_instance",
            "POST",
            f"/redeploy/{instance_id}",
            OperationResult,
            json=body,
            idempotent=False,
        )

    async def platforms(self) -> PlatformList:
        """Each platform as services' placement sees it (priority, capacity, use, health)."""
        return await self._call("platforms", "GET", "/platforms", PlatformList)

    async def registry(self) -> Registry:
        """The tools services can provision now (configured ones), never a secret."""
        return await self._call("registry", "GET", "/registry", Registry)

    async def status_batch(self, body: StatusBatchRequest | None = None, *, timeout: float) -> Batch:
        """One attempt, never retried: each attempt is a whole observation in services (every
        platform page, every probe), and services keeps going after a client hangs up, so a retry
        on timeout multiplied platform calls. The tick's next run is the retry. `timeout` (the
        tick's setting) must exceed services' batch deadline."""
        payload = (body or StatusBatchRequest()).model_dump(by_alias=True)
        try:
            response = await self._client.post("/status/batch", json=payload, timeout=call_timeout(timeout))
        except httpx.TransportError as exc:
            self._note("status_batch", "unreachable")
            raise TransientError(f"{self.name} unreachable: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            self._note("status_batch", "error")
            raise error_from_body(response, "services POST /status/batch")
        self._note("status_batch", "ok")
        # Parsed by pydantic-core straight from the bytes (a 10,000-instance batch is megabytes),
        # into the pool's lean form of the entries (pool.status_batch).
        return Batch.model_validate_json(response.content)
