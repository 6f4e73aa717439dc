"""Shared by the Railway tests: a fake served over real HTTP and providers pointed at it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx

from devtools.railway_fake import DeploySettings, FakeRailway
from services.platforms.base import PlatformRef
from services.platforms.railway.provider import RailwayPlatform
from services.platforms.railway.settings import RailwaySettings

TOKEN = "rw-test-token-1"
FAST = DeploySettings(
    queued_seconds=0.02, building_seconds=0.02, deploying_seconds=0.05, launch_processes=False
)


class Harness:
    """A fake Railway served over real HTTP, and providers pointed at it."""

    def __init__(self, fake: FakeRailway, url: str, http: httpx.AsyncClient) -> None:
        self.fake = fake
        self.url = url
        self.http = http
        self.shared_project_id = ""
        self.shared_environment_id = ""

    def shared_project(self) -> None:
        project = self.fake.store.create_project("fleet", None, TOKEN, "production")
        self.shared_project_id = project.id
        self.shared_environment_id = self.fake.store.live_environments(project.id)[0].id

    def settings(self, mode: str = "shared", **overrides: Any) -> RailwaySettings:
        values: dict[str, Any] = {
            "api_token": TOKEN,
            "api_url": f"{self.url}/graphql/v2",
            "mode": mode,
            "public_scheme": "http",
            "project_create_cooldown_seconds": 0,
            "volume_create_cooldown_seconds": 0,
            "backoff_seconds": 0.01,
            "max_retry_after_seconds": 0.05,
            "requests_per_second": 1000,
        }
        if mode == "shared":
            if not self.shared_project_id:
                self.shared_project()
            values["project_id"] = self.shared_project_id
        values.update(overrides)
        return RailwaySettings(**values)

    def platform(self, mode: str = "shared", **overrides: Any) -> RailwayPlatform:
        return RailwayPlatform(self.settings(mode, **overrides), self.http)


def recorder() -> tuple[list[PlatformRef], Callable[[PlatformRef], Awaitable[None]]]:
    seen: list[PlatformRef] = []

    async def on_progress(ref: PlatformRef) -> None:
        seen.append(replace(ref, data=dict(ref.data)))

    return seen, on_progress
