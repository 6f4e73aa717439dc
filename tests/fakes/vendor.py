"""Common bits of the vendor fakes: injected failures and clocks."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import httpx


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    return datetime.now(UTC)


def ago(seconds: float) -> datetime:
    return now() - timedelta(seconds=seconds)


def bearer(request: httpx.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme == "Bearer" and token else None


class Failures:
    """`fail("create", 500, times=2)`: the next two creates answer 500 with the vendor's error shape."""

    def __init__(self) -> None:
        self._queued: dict[str, list[int]] = defaultdict(list)

    def fail(self, operation: str, status: int = 500, *, times: int = 1) -> None:
        self._queued[operation].extend([status] * times)

    def next(self, operation: str) -> int | None:
        queued = self._queued.get(operation)
        return queued.pop(0) if queued else None
