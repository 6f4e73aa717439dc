"""Platform providers by name: `SERVICES_PLATFORM` picks one, built once in the app's lifespan.

The one place that names the providers: the rest of services sees only `base.Platform`. Each
provider module is imported on use, so a provider and its dependencies load only when chosen.
Each builder takes the settings and the app's shared HTTP client. Tests swap a fake in by name
(`monkeypatch.setitem(PLATFORMS, "failing", ...)`), so the code under test is the real app.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

import httpx

from services.config import Settings
from services.platforms.base import Platform

PlatformBuilder = Callable[[Settings, httpx.AsyncClient], Platform]


def _on_use(module: str, builder: str) -> PlatformBuilder:
    def build(settings: Settings, http_client: httpx.AsyncClient) -> Platform:
        built = getattr(importlib.import_module(module), builder)
        return cast(PlatformBuilder, built)(settings, http_client)

    return build


PLATFORMS: dict[str, PlatformBuilder] = {
    "local": _on_use("services.platforms.local.provider", "build_local_platform"),
    "railway": _on_use("services.platforms.railway.provider", "build_railway_platform"),
}


def build_platform(settings: Settings, http_client: httpx.AsyncClient) -> Platform:
    try:
        builder = PLATFORMS[settings.platform]
    except KeyError:
        raise ValueError(
            f"unknown SERVICES_PLATFORM {settings.platform!r}; choose one of {sorted(PLATFORMS)}"
        ) from None
    return builder(settings, http_client)
