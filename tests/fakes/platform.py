"""An in-memory platform for services tests whose subject is the orchestration around the
platform (write-ahead, rollback, status batching), not the platform itself."""

from __future__ import annotations

import asyncio
from typing import Any

from services.platforms.base import (
    FleetSnapshot,
    InstanceSpec,
    Platform,
    PlatformOrphanRef,
    PlatformRef,
    PlatformState,
    ProgressCallback,
)
from services.platforms.registry import PlatformEntry, Platforms
from shared.errors import TransientError
from shared.schemas import DeployState


class MemoryPlatform:
    name = "memory"

    def __init__(self) -> None:
        # service id → spec: what "exists on the platform".
        self.live: dict[str, InstanceSpec] = {}
        self.created: list[InstanceSpec] = []
        self.destroyed: list[str] = []
        self.configured: list[tuple[str, dict[str, str], bool]] = []
        self.fail_create: str | None = None
        self.fail_destroy: str | None = None
        self.fail_status: str | None = None
        # When set, create waits on it after the first resource exists (a create "in flight").
        self.hold_create: asyncio.Event | None = None
        self.create_started = asyncio.Event()
        self.statuses: dict[str, DeployState] = {}
        self.urls: dict[str, str] = {}
        self.status_calls = 0

    async def create(self, spec: InstanceSpec, on_progress: ProgressCallback) -> PlatformRef:
        service_id = f"svc-{spec.instance_id}"
        self.created.append(spec)
        self.live[service_id] = spec
        ref = PlatformRef(
            provider=self.name, data={"service_id": service_id}, url=self.urls.get(spec.instance_id)
        )
        await on_progress(ref)
        self.create_started.set()
        if self.hold_create is not None:
            await self.hold_create.wait()
        if self.fail_create:
            raise TransientError(self.fail_create)
        ref.data["domain"] = f"{spec.instance_id}.memory.test"
        await on_progress(ref)
        return ref

    async def status_many(self, refs: dict[str, PlatformRef], *, listing: bool = True) -> FleetSnapshot:
        self.status_calls += 1
        if self.fail_status:
            raise TransientError(self.fail_status)
        states = {}
        for instance_id, ref in refs.items():
            exists = ref.data.get("service_id") in self.live
            status: DeployState = self.statuses.get(instance_id, "running") if exists else "removed"
            states[instance_id] = PlatformState(deploy_status=status, url=ref.url)
        return FleetSnapshot(states=states, api_calls=1)

    async def destroy(self, ref: PlatformRef) -> bool:
        if self.fail_destroy:
            raise TransientError(self.fail_destroy)
        service_id = ref.data["service_id"]
        self.destroyed.append(service_id)
        return self.live.pop(service_id, None) is not None

    async def destroy_orphan(self, orphan: PlatformOrphanRef) -> bool:
        self.destroyed.append(orphan.ref)
        return self.live.pop(orphan.ref, None) is not None

    def orphan_match(self, orphan: PlatformOrphanRef) -> dict[str, Any]:
        return {"service_id": orphan.ref}

    async def configure(self, ref: PlatformRef, variables: dict[str, str], *, redeploy: bool) -> None:
        self.configured.append((ref.data["service_id"], variables, redeploy))

    async def redeploy(self, ref: PlatformRef, *, image: str | None) -> DeployState | None:
        return "deploying"

    async def aclose(self) -> None:
        return None


def single(platform: Platform, name: str | None = None, *, capacity: int | None = None) -> Platforms:
    """One platform, named like its provider unless told (what settings without SERVICES_PLATFORMS build)."""
    return Platforms([PlatformEntry(name or platform.name, platform.name, 0, capacity, platform)])
