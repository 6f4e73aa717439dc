"""Common bits of the vendor fakes: routes, injected failures and clocks.

A fake is its state plus handlers `httpx.Request -> httpx.Response`, listed by `routes()` as paths
below the vendor's base URL. The same handlers serve two ways: in-process through a respx router
(`install`, unit tests) and over HTTP (devtools/vendor_fakes/server.py, for real processes).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    import respx


@dataclass(frozen=True)
class Route:
    method: str
    # A regex on the path below the base URL; named groups become the handler's keyword arguments.
    path: str
    handler: Callable[..., httpx.Response]

    def url_regex(self, base_url: str) -> str:
        return rf"^{re.escape(base_url)}{self.path}(\?.*)?$"


def install(router: respx.MockRouter, base_url: str, routes: list[Route]) -> None:
    for route in routes:
        pattern = route.url_regex(base_url)
        router.route(method=route.method, url__regex=pattern).mock(side_effect=route.handler)


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
