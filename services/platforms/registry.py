"""Platform providers by name, and the platforms services runs (`SERVICES_PLATFORMS`), each built
once in the app's lifespan.

The one place that names the providers: the rest of services sees only `base.Platform`, reached
through `Platforms` by the platform name an instance records. Each provider module is imported on
use, so a provider and its dependencies load only when chosen. A provider's builder takes the
settings, the app's shared HTTP client and the platform's own entry (its settings overrides, the
budgets it may share with other platforms of the same provider). Tests swap a fake in by name
(`monkeypatch.setitem(PLATFORMS, "failing", ...)`, a two-argument builder taking no provider
settings), so the code under test is the real app.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx

from services.config import PlatformConfig, Settings
from services.platforms.base import Platform
from shared.errors import UpstreamError


@dataclass
class BuildContext:
    config: PlatformConfig
    # Client-side budgets shared by platforms of one provider that spend the same account's limits
    # (two platforms of one provider on the same account share one rate limiter); keyed by each provider.
    shared: dict[Any, Any] = field(default_factory=dict)


class _OnUse:
    """A provider's builder, imported on first use; it takes the platform's `BuildContext`."""

    def __init__(self, module: str, builder: str) -> None:
        self.module, self.builder = module, builder

    def __call__(self, settings: Settings, http_client: httpx.AsyncClient, context: BuildContext) -> Platform:
        built = getattr(importlib.import_module(self.module), self.builder)
        return cast(Callable[..., Platform], built)(settings, http_client, context)


PlatformBuilder = Callable[..., Platform]

PLATFORMS: dict[str, PlatformBuilder] = {
    "local": _OnUse("services.platforms.local.provider", "build_local_platform"),
    "railway": _OnUse("services.platforms.railway.provider", "build_railway_platform"),
}


@dataclass
class PlatformEntry:
    """One configured platform: where placement may put an instance, and the provider that runs it."""

    name: str
    provider: str
    priority: int
    capacity: int | None
    platform: Platform


class Platforms:
    """The configured platforms in placement order (priority, then the order of the list)."""

    def __init__(self, entries: list[PlatformEntry]) -> None:
        self.entries = entries
        self.entries_by_name = {entry.name: entry for entry in entries}

    def __iter__(self) -> Iterator[PlatformEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        return [entry.name for entry in self.entries]

    def find(self, name: str | None) -> PlatformEntry | None:
        return self.entries_by_name.get(name or "")

    def get(self, name: str | None, *, instance_id: str) -> PlatformEntry:
        """The platform an instance lives on; its absence (taken out of `SERVICES_PLATFORMS` while
        instances still live there) is answered 502 naming it, never guessed."""
        entry = self.find(name)
        if entry is None:
            raise UpstreamError(
                f"instance {instance_id} lives on platform {name!r}, which SERVICES_PLATFORMS no longer "
                f"lists (configured: {', '.join(self.names())}); add it back (capacity 0) to reach it"
            )
        return entry

    async def aclose(self) -> None:
        for entry in self.entries:
            await entry.platform.aclose()


def build_platforms(settings: Settings, http_client: httpx.AsyncClient) -> Platforms:
    """Every configured platform, built once; a bad configuration stops the start with its reason."""
    shared: dict[Any, Any] = {}
    entries: list[PlatformEntry] = []
    territories: dict[Any, str] = {}
    for config in settings.platform_configs:
        builder = PLATFORMS.get(config.provider)
        if builder is None:
            raise ValueError(
                f"platform {config.name!r}: unknown provider {config.provider!r}; "
                f"choose one of {sorted(PLATFORMS)}"
            )
        if isinstance(builder, _OnUse):
            platform = builder(settings, http_client, BuildContext(config, shared))
        elif config.settings:
            raise ValueError(f"platform {config.name!r}: provider {config.provider!r} takes no settings")
        else:
            platform = builder(settings, http_client)
        # What a platform's orphan listing covers (a local data directory, a remote project or
        # account): two platforms covering the same would take each other's instances for orphans.
        territory = getattr(platform, "territory", None)
        if territory is not None:
            if territory in territories:
                raise ValueError(
                    f"platforms {territories[territory]!r} and {config.name!r} share {territory!r}: each "
                    "would take the other's instances for orphans; give them different settings"
                )
            territories[territory] = config.name
        entries.append(
            PlatformEntry(config.name, config.provider, config.priority, config.capacity, platform)
        )
    return Platforms(entries)
