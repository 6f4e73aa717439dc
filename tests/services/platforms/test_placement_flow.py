"""Placement through services' API, on two in-memory platforms: a full platform sends the next create
to the next one and every instance stays where it was made (status, configure, destroy); a
failing platform is skipped, paused, then tried again; "at capacity" pauses it at once; every
platform failing fails the create naming each; one platform failing to answer a status batch
holds only its own instances; the sweep matches each platform's orphans against its own rows."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.models import InstanceInfra
from services.platforms.base import AtCapacity, InstanceSpec, PlatformRef, ProgressCallback
from services.platforms.registry import PLATFORMS, build_platforms
from services.sweep.service import run_sweep
from shared.db import make_engine, make_sessionmaker
from tests.fakes.platform import MemoryPlatform
from tests.services.conftest import AUTH, AppClient, create_and_wait


class FullPlatform(MemoryPlatform):
    """Answers every create the way a full Railway project does."""

    async def create(self, spec: InstanceSpec, on_progress: ProgressCallback) -> PlatformRef:
        await on_progress(PlatformRef(provider=self.name, data={"service_id": f"svc-{spec.instance_id}"}))
        self.live[f"svc-{spec.instance_id}"] = spec
        raise AtCapacity("ServiceCreate: Project has reached the maximum number of services (100)")


@pytest.fixture
def first(monkeypatch: pytest.MonkeyPatch) -> MemoryPlatform:
    platform = MemoryPlatform()
    monkeypatch.setitem(PLATFORMS, "memory-a", lambda settings, client: platform)
    return platform


@pytest.fixture
def second(monkeypatch: pytest.MonkeyPatch) -> MemoryPlatform:
    platform = MemoryPlatform()
    monkeypatch.setitem(PLATFORMS, "memory-b", lambda settings, client: platform)
    return platform


def two(capacity: int | None = None, **first: Any) -> list[dict[str, Any]]:
    return [
        {"name": "first", "provider": "memory-a", "priority": 1, "capacity": capacity, **first},
        {"name": "second", "provider": "memory-b", "priority": 2},
    ]


def iid(n: int) -> str:
    return f"inst0000000{n}"


async def create(api: httpx.AsyncClient, n: int) -> dict[str, Any]:
    return await create_and_wait(api, {"instanceId": iid(n), "name": f"a{n}", "tools": []})


async def placed(api: httpx.AsyncClient) -> dict[str, str | None]:
    page = (await api.get("/instances", headers=AUTH)).json()
    return {i["instanceId"]: i["platform"] for i in page["instances"]}


async def platforms(api: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    answer = await api.get("/platforms", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return {p["name"]: p for p in answer.json()["platforms"]}


async def test_a_full_platform_sends_the_next_create_on_and_each_instance_stays_on_its_own(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    first: MemoryPlatform,
    second: MemoryPlatform,
) -> None:
    async with app_client(make_settings(platforms=two(capacity=2))) as api:
        for n in (1, 2, 3):
            assert (await create(api, n))["phase"] == "deploying"
        assert await placed(api) == {iid(1): "first", iid(2): "first", iid(3): "second"}
        assert [s.instance_id for s in first.created] == [iid(1), iid(2)]
        assert [s.instance_id for s in second.created] == [iid(3)]
        view = await platforms(api)
        assert {k: (v["inUse"], v["capacity"], v["health"]) for k, v in view.items()} == {
            "first": (2, 2, "full"),
            "second": (1, None, "ok"),
        }

        batch = (await api.post("/status/batch", json={}, headers=AUTH)).json()
        assert (first.status_calls, second.status_calls) == (1, 1)
        assert {i: (o["platform"], o["deployStatus"]) for i, o in batch["instances"].items()} == {
            iid(1): ("first", "running"),
            iid(2): ("first", "running"),
            iid(3): ("second", "running"),
        }
        configured = await api.post(f"/configure/{iid(3)}", json={"variables": {"A": "b"}}, headers=AUTH)
        assert configured.status_code == 200, configured.text
        assert [c[0] for c in second.configured] == [f"svc-{iid(3)}"] and first.configured == []

        for n in (3, 1):
            assert (await api.delete(f"/destroy/{iid(n)}", headers=AUTH)).status_code == 200
        assert (first.destroyed, second.destroyed) == ([f"svc-{iid(1)}"], [f"svc-{iid(3)}"])
        # A place freed on the first platform takes the next create there again.
        await create(api, 4)
        assert (await placed(api))[iid(4)] == "first"


async def test_capacity_zero_drains_new_creates_while_existing_instances_live_on_where_they_are(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    first: MemoryPlatform,
    second: MemoryPlatform,
) -> None:
    async with app_client(make_settings(platforms=two())) as api:
        await create(api, 1)
    async with app_client(make_settings(platforms=two(capacity=0))) as api:
        await create(api, 2)
        assert await placed(api) == {iid(1): "first", iid(2): "second"}
        assert (await platforms(api))["first"]["health"] == "draining"
        batch = (await api.post("/status/batch", json={}, headers=AUTH)).json()
        assert batch["instances"][iid(1)]["deployStatus"] == "running"
        assert (await api.delete(f"/destroy/{iid(1)}", headers=AUTH)).status_code == 200
        assert first.destroyed == [f"svc-{iid(1)}"] and first.live == {}


async def test_a_failing_platform_is_skipped_while_it_backs_off_then_tried_again(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    first: MemoryPlatform,
    second: MemoryPlatform,
) -> None:
    settings = make_settings(platforms=two(), placement_backoff_after=2, placement_backoff_seconds=1.0)
    first.fail_create = "ServiceCreate: Problem processing request"
    async with app_client(settings) as api:
        for n in (1, 2):
            assert (await create(api, n))["phase"] == "deploying"
        # Each failed try was removed from the first platform before the second was asked.
        assert first.live == {} and first.destroyed == [f"svc-{iid(1)}", f"svc-{iid(2)}"]
        view = (await platforms(api))["first"]
        assert (view["health"], view["consecutiveFailures"], view["lastError"]) == (
            "backing off",
            2,
            "ServiceCreate: Problem processing request",
        )
        assert view["backoffUntil"] is not None

        await create(api, 3)
        assert len(first.created) == 2  # skipped while it backs off

        first.fail_create = None
        await asyncio.sleep(1.1)
        await create(api, 4)
        assert await placed(api) == {iid(1): "second", iid(2): "second", iid(3): "second", iid(4): "first"}
        view = (await platforms(api))["first"]
        assert (view["health"], view["consecutiveFailures"], view["backoffUntil"]) == ("ok", 0, None)


async def test_at_capacity_pauses_the_platform_at_once_and_every_platform_failing_fails_the_create(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    second: MemoryPlatform,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full = FullPlatform()
    monkeypatch.setitem(PLATFORMS, "memory-a", lambda settings, client: full)
    async with app_client(make_settings(platforms=two())) as api:
        await create(api, 1)
        assert (await placed(api))[iid(1)] == "second" and full.live == {}
        assert (await platforms(api))["first"]["health"] == "backing off"

        second.fail_create = "ProjectCreate: Problem processing request"
        failed = await create(api, 2)
    assert failed["phase"] == "failed"
    assert failed["error"] == (
        f"platform create failed for instance {iid(2)}: first: backing off until "
        f"{failed['error'].split('until ')[1][:8]} UTC after 1 failures (last: ServiceCreate: Project has "
        "reached the maximum number of services (100)); second: ProjectCreate: Problem processing request"
    )


async def test_one_platform_failing_to_answer_holds_only_its_own_instances(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    first: MemoryPlatform,
    second: MemoryPlatform,
) -> None:
    async with app_client(make_settings(platforms=two(capacity=1))) as api:
        await create(api, 1)
        await create(api, 2)
        first.fail_status = "Railway answered 429: rate limited"
        batch = (await api.post("/status/batch", json={}, headers=AUTH)).json()
    assert (batch["platformOk"], batch["platformError"]) == (
        False,
        "first: Railway answered 429: rate limited",
    )
    assert {i: (o["platformOk"], o["deployStatus"]) for i, o in batch["instances"].items()} == {
        iid(1): (False, None),
        iid(2): (True, "running"),
    }


async def test_the_sweep_matches_each_platforms_orphans_against_its_own_rows(
    make_settings: Callable[..., Settings], tmp_path: Path, services_db_url: str
) -> None:
    roots = {name: tmp_path / name for name in ("local-a", "local-b")}
    settings = make_settings(
        platforms=[
            {"name": name, "provider": "local", "settings": {"local_data_dir": str(root)}}
            for name, root in roots.items()
        ]
    )
    # One instance recorded on local-a, and a leftover directory of the same instance on local-b
    # (a try the create fell through from): only the leftover is an orphan.
    for root in roots.values():
        (root / iid(1) / "data").mkdir(parents=True)
    engine = make_engine(services_db_url, pool_size=2)
    sessionmaker: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
    try:
        async with sessionmaker.begin() as session:
            session.add(
                InstanceInfra(
                    instance_id=iid(1),
                    name="a",
                    platform="local-a",
                    provider="local",
                    state="active",
                    platform_ref={"data_dir": str((roots["local-a"] / iid(1)).resolve()), "port": 1},
                )
            )
        async with httpx.AsyncClient() as http:
            report = await run_sweep(
                sessionmaker, tools={}, grace_seconds=0.001, platforms=build_platforms(settings, http)
            )
    finally:
        await engine.dispose()
    assert [(o.kind, o.tool_id, o.instance_id, o.action) for o in report.orphans] == [
        ("platform_orphan", "local-b", iid(1), "removed")
    ]
    assert (roots["local-a"] / iid(1)).is_dir() and not (roots["local-b"] / iid(1)).exists()
