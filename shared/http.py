"""Outbound HTTP: a thin base over an injected `httpx.AsyncClient`.

Every call states its timeout (`timeout=`, from the calling client's settings): the injected client
is shared, and its own default (e.g. services' short probe timeout) belongs to someone else.
Retries follow the client's `RetryPolicy` (shared/retry.py): only 429/502/503/504 and connection
errors, honouring `Retry-After`. A non-idempotent POST is tried once unless the caller says it
carries an idempotency key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from shared.errors import PermanentError, TransientError, UpstreamError
from shared.retry import RetryPolicy, retry_after_seconds

RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# The retry policy of an HTTP API that sets none of its own.
HTTP_RETRY = RetryPolicy("http", attempts=3, backoff_seconds=0.5, max_retry_after_seconds=30.0)


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


class RetryableAnswer(Exception):
    """A 429/502/503/504 answer, raised inside the retry loop so the policy can try again."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response
        self.retry_after = retry_after_seconds(response)


def _worth_retrying(error: BaseException) -> bool:
    return isinstance(error, RetryableAnswer | httpx.TransportError)


class ApiClient:
    """Base for one external API. Subclasses add one method per remote operation."""

    name = "api"

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy = HTTP_RETRY,
    ) -> None:
        # The injected client is shared with other APIs: this one's address and auth go on each
        # request rather than on the client.
        self._client = client
        self._base_url = base_url.rstrip("/")
        self._headers = dict(headers or {})
        self.retry = retry

    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """Send a request; retry transient failures; return the final response (2xx or not).
        `timeout` bounds each try (seconds)."""
        may_retry = idempotent if idempotent is not None else method.upper() in IDEMPOTENT_METHODS
        limit = call_timeout(timeout)
        merged = {**self._headers, **(headers or {})}

        async def attempt() -> httpx.Response:
            response = await self._client.request(
                method, self._base_url + url, json=json, params=params, headers=merged, timeout=limit
            )
            if response.status_code in RETRYABLE_STATUS:
                raise RetryableAnswer(response)
            return response

        try:
            return await self.retry.call(attempt, retry_on=_worth_retrying, attempts=None if may_retry else 1)
        except RetryableAnswer as answer:
            return answer.response
        except httpx.TransportError as exc:
            raise TransientError(f"{self.name} unreachable: {type(exc).__name__}: {exc}") from exc
