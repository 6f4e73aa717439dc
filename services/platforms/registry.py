"""Platform providers by name: `SERVICES_PLATFORM` picks one, built once in the app's lifespan.

Each builder takes the settings and the app's shared HTTP client. Tests swap a fake in by name
(`monkeypatch.setitem(PLATFORMS, "failing", ...)`), so the code under test is the real app.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from services.config import Settings
from services.platforms.base import Platform
from services.platforms.local import build_local_platform

PlatformBuilder = Callable[[Settings, httpx.AsyncClient], Platform]


def _build_railway(settings: Settings, http_client: httpx.AsyncClient) -> Platform:
    # Imported on use: the Railway provider and its GraphQL operations load only when chosen.
    from services.platforms.railway.provider import build_railway_platform  # type: ignore[import-not-found,unused-ignore]

    platform: Platform = build_railway_platform(settings, http_client)
    return platform


PLATFORMS: dict[str, PlatformBuilder] = {
    "local": build_local_platform,
    "railway": _build_railway,
}


def build_platform(settings: Settings, http_client: httpx.AsyncClient) -> Platform:
    try:
        builder = PLATFORMS[settings.platform]
    except KeyError:
        raise ValueError(
            f"unknown SERVICES_PLATFORM {settings.platform!r}; choose one of {sorted(PLATFORMS)}"
        ) from None
    return builder(settings, http_client)
