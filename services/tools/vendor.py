"""Small helpers every vendor plugin shares: the HTTP client, resource names, timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

from shared.http import HTTP_RETRY, ApiClient
from shared.retry import RetryPolicy

INSTANCE_ID = re.compile(r"^[0-9a-z]{12}$")


class VendorClient(ApiClient):
    """An ApiClient over the app's shared httpx client with this vendor's base URL and auth header.
    `timeout` is the vendor's `*_TIMEOUT_SECONDS`, which each call states."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        auth: dict[str, str],
        timeout: float,
        retry: RetryPolicy = HTTP_RETRY,
    ) -> None:
        super().__init__(client, base_url=base_url, headers=auth, retry=retry)
        self.timeout = timeout


def resource_name(prefix: str, instance_id: str) -> str:
    """The name every resource made for an instance carries, so the sweep can tell ours from others'."""
    return f"{prefix}{instance_id}"


def instance_from_name(prefix: str, name: str | None) -> str | None:
    if not name or not name.startswith(prefix):
        return None
    rest = name[len(prefix) :]
    return rest if INSTANCE_ID.match(rest) else None


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
