"""Railway answers most failures with HTTP 200 and `errors[]`; the message is the only reliable signal.

TransientError
├── RailwayThrottled     "creating projects/volumes/environments too quickly" (per-token cooldown)
├── RailwayRetryable     "Problem processing request", "Failed to create service domain", 5xx
│   └── RailwayRateLimited   HTTP 429 (carries its Retry-After)
└── AtCapacity
    └── RailwayAtCapacity    the project holds as many services as it may (~100): never retried,
                             placement tries the next platform
PermanentError
├── RailwayNotFound      "... not found" (destroy treats it as success)
├── RailwayUnauthorized  "Not Authorized", "Project token not found"
└── RailwayRejected      anything else (name clash, invalid name, bad document)
"""

from __future__ import annotations

from typing import Any, Literal

from services.platforms.base import AtCapacity
from shared.errors import PermanentError, TransientError

ThrottleKind = Literal["project", "volume", "environment"]


class RailwayThrottled(TransientError):
    # Tried again at once: the throttle is per token, and the token pool hands the next try the
    # token whose cooldown ends first, waiting there if need be (shared/retry.py reads this).
    retry_after = 0.0

    def __init__(self, message: str, kind: ThrottleKind) -> None:
        super().__init__(message)
        self.kind = kind


def error_alias(error: Exception) -> str | None:
    """The root field (alias) a GraphQL error belongs to, when Railway said."""
    path = getattr(error, "graphql_path", None)
    return str(path[0]) if isinstance(path, list) and path else None


class RailwayRetryable(TransientError):
    pass


class RailwayRateLimited(RailwayRetryable):
    """HTTP 429: the request was not executed, so even a creation may be sent again."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RailwayAtCapacity(AtCapacity):
    pass


class RailwayNotFound(PermanentError):
    pass


class RailwayUnauthorized(PermanentError):
    pass


class RailwayRejected(PermanentError):
    pass


# Messages after which the same request may succeed; "Problem processing request" is Railway's
# generic failure, which other clients retry too (specs/railway.md §3).
_RETRYABLE = ("problem processing request", "failed to create service domain", "internal server error")
# Railway's words for a project that holds all the services it may (about 100 per project,
# specs/lessons-from-the-original.md). The exact text is unconfirmed: these fragments cover the
# fake's "Project has reached the maximum number of services (100)" and likely variants.
_AT_CAPACITY = ("maximum number of services", "service limit", "too many services")


def error_from_graphql(operation: str, errors: list[dict[str, Any]]) -> Exception:
    first = errors[0] if errors else {}
    error = _classify(operation, first)
    error.graphql_path = first.get("path")  # type: ignore[attr-defined]
    return error


def _classify(operation: str, first: dict[str, Any]) -> Exception:
    message = str(first.get("message", "unknown error"))
    lower = message.lower()
    text = f"railway {operation}: {message}"
    if "too quickly" in lower or "can be created per user every" in lower:
        kind: ThrottleKind = "project"
        if "volume" in lower:
            kind = "volume"
        elif "environment" in lower:
            kind = "environment"
        return RailwayThrottled(text, kind)
    if any(fragment in lower for fragment in _AT_CAPACITY):
        return RailwayAtCapacity(text)
    if "not authorized" in lower or "project token not found" in lower:
        return RailwayUnauthorized(text)
    if lower.endswith("not found"):
        return RailwayNotFound(text)
    if any(fragment in lower for fragment in _RETRYABLE):
        return RailwayRetryable(text)
    return RailwayRejected(text)
