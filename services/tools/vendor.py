"""Small helpers every vendor plugin shares: the HTTP client, resource names, timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import httpx

INSTANCE_ID = re.compile(r"^[0-9a-z]{12}$")


def make_http_client(
    base_url: str, headers: dict[str, str], *, timeout: float, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url.rstrip("/"),
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        transport=transport,
    )


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
