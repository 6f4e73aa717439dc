"""Outbound HTTP: a thin base over an injected `httpx.AsyncClient`.

Retries only what is safe to retry: 429/502/503/504 and connection errors, honouring
`Retry-After`, with a cap on attempts. A non-idempotent POST is retried only when the caller
says it carries an idempotency key.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from typing import Any

import httpx

from shared.errors import PermanentError, TransientError, UpstreamError

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def retry_after_seconds(response: httpx.Response, default: float) -> float:
    value = response.headers.get("Retry-After")
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def call_timeout(seconds: float) -> httpx.Timeout:
    """One call's timeout; connecting gets at most 5 s of it (a peer that does not accept is down)."""
    return httpx.Timeout(seconds, connect=min(seconds, 5.0))


def error_from_response(response: httpx.Response, what: str) -> UpstreamError:
    """Typed error for a non-2xx answer: transient for rate limits and 5xx, permanent otherwise."""
    text = response.text[:300]
    message = f"{what} answered {response.status_code}: {text}"
    if response.status_code in RETRYABLE_STATUS or response.status_code >= 500:
        return TransientError(message)
    return PermanentError(message)


class ApiClient:
    """Base for one external API. Subclasses add one method per remote operation."""

    name = "api"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        max_attempts: int = 3,
        backoff_seconds: float = 0.5,
        max_retry_after: float = 30.0,
        timeout: float | None = None,
    ) -> None:
        self._client = client
        # Per-API timeout over a shared client; None keeps the client's own.
        self._timeout: Any = (
            httpx.Timeout(timeout, connect=min(timeout, 5.0)) if timeout else httpx.USE_CLIENT_DEFAULT
        )
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._max_retry_after = max_retry_after

    async def request(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send a request; retry transient failures; return any final response (2xx or not)."""
        may_retry = idempotent if idempotent is not None else method.upper() in IDEMPOTENT_METHODS
        attempts = self._max_attempts if may_retry else 1
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                response = await self._client.request(
                    method, url, json=json, params=params, headers=headers, timeout=self._timeout
                )
            except httpx.TransportError as exc:
                last_error = exc
                if attempt == attempts:
                    break
                await asyncio.sleep(self._delay(attempt))
                continue
            if response.status_code in RETRYABLE_STATUS and attempt < attempts:
                wait = min(retry_after_seconds(response, self._delay(attempt)), self._max_retry_after)
                await asyncio.sleep(wait)
                continue
            return response
        raise TransientError(f"{self.name} unreachable: {type(last_error).__name__}: {last_error}")

    async def request_ok(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        response = await self.request(method, url, **kwargs)
        if response.is_success:
            return response
        raise error_from_response(response, f"{self.name} {method} {url}")

    def _delay(self, attempt: int) -> float:
        return float(self._backoff * (2 ** (attempt - 1)) * (0.5 + random.random()))
