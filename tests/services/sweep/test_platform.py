"""The sweep destroys platform orphans past the grace period: real runtime processes of the local
provider, and services/projects of the fake Railway; never a create in flight, never a stranger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devtools.railway_fake import FakeRailway, FakeSettings
from services.config import Settings
from services.instances import service as instances_service
from services.models import InstanceInfra
from services.platforms.base import InstanceSpec, PlatformOrphanRef, PlatformRef
from services.platforms.local.process import live_process
from services.platforms.local.provider import LocalPlatform
from services.platforms.railway.ref import RailwayRef
from services.sweep.service import run_sweep
from shared.db import make_engine, make_sessionmaker
from shared.errors import PermanentError
from tests.fakes.platform import MemoryPlatform, single
from tests.services.conftest import AUTH, AppClient, create_and_wait
from tests.services.platforms.railway.harness import FAST, TOKEN, Harness
from tests.support import serve

GRACE = 600.0
ORPHAN = "orphan000001"
HOUR = timedelta(hours=1)

Sessionmaker = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessionmaker(services_db_url: str) -> AsyncIterator[Sessionmaker]:
    engine = make_engine(services_db_url, pool_size=5)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def railway() -> AsyncIterator[Harness]:
    fake = FakeRailway(FakeSettings(tokens={TOKEN}), replace(FAST))
    async with httpx.AsyncClient(timeout=30) as http, serve(fake.app()) as url:
        yield Harness(fake, url, http)


async def no_progress(ref: PlatformRef) -> None:
    return None


def spec(instance_id: str) -> InstanceSpec:
    return InstanceSpec(instance_id=instance_id, name=instance_id, env={"GATEWAY_TOKEN": "pool_gw_x"})


async def add_row(sessionmaker: Sessionmaker, instance_id: str, provider: str, **values: Any) -> None:
    async with sessionmaker.begin() as session:
        session.add(
            InstanceInfra(
                instance_id=instance_id, name=instance_id, provider=provider, platform=provider, **values
            )
        )


def recorded_process(data_dir: Path, instance_id: str) -> psutil.Process | None:
    return live_process(json.loads((data_dir / instance_id / "process.json").read_text()))


def actions(report: Any) -> list[tuple[str | None, str | None, str]]:
    return sorted((o.resource_id, o.instance_id, o.action) for o in report.orphans)


# -- local ---------------------------------------------------------------------------------------


async def test_a_local_runtime_without_a_row_is_kept_within_grace_and_destroyed_past_it(
    make_settings: Callable[..., Settings], data_dir: Path, sessionmaker: Sessionmaker
) -> None:
    platform = LocalPlatform(make_settings())
    # Started by the platform directly, never recorded: what a services crash mid-create leaves.
    await platform.create(spec(ORPHAN), no_progress)
    info = json.loads((data_dir / ORPHAN / "process.json").read_text())
    process = live_process(info)
    assert process is not None

    young = await run_sweep(sessionmaker, tools={}, grace_seconds=GRACE, platforms=single(platform))
    assert actions(young) == [(ORPHAN, ORPHAN, "kept (younger than grace)")]
    assert process.is_running() and (data_dir / ORPHAN).is_dir()

    old = await run_sweep(sessionmaker, tools={}, grace_seconds=0, platforms=single(platform))
    assert actions(old) == [(ORPHAN, ORPHAN, "removed")]
    assert old.errors == []
    # Gone: no live process with that pid, create time and command line (pid reuse cannot fool it).
    assert live_process(info) is None
    assert not (data_dir / ORPHAN).exists()
    assert (
        await run_sweep(sessionmaker, tools={}, grace_seconds=0, platforms=single(platform))
    ).orphans == []


async def test_local_leftover_directories_are_removed_and_strangers_only_reported(
    make_settings: Callable[..., Settings], data_dir: Path, sessionmaker: Sessionmaker
) -> None:
    platform = LocalPlatform(make_settings())
    (data_dir / "leftover0001" / "data").mkdir(parents=True)
    (data_dir / "notes").mkdir()

    report = await run_sweep(sessionmaker, tools={}, grace_seconds=0, platforms=single(platform))

    assert actions(report) == [
        ("leftover0001", "leftover0001", "removed"),
        ("notes", None, "reported (not named like an instance)"),
    ]
    assert sorted(p.name for p in data_dir.iterdir()) == ["notes"]


async def test_a_create_in_flight_is_never_an_orphan_even_past_grace(
    make_settings: Callable[..., Settings], data_dir: Path, sessionmaker: Sessionmaker
) -> None:
    platform = LocalPlatform(make_settings())
    # The write-ahead row is committed, the process runs, its ref is not recorded yet.
    await add_row(sessionmaker, ORPHAN, "local", state="creating")
    await platform.create(spec(ORPHAN), no_progress)

    report = await run_sweep(sessionmaker, tools={}, grace_seconds=0, platforms=single(platform))

    assert actions(report) == [(ORPHAN, ORPHAN, "kept (a row records it)")]
    assert recorded_process(data_dir, ORPHAN) is not None


async def test_recorded_instances_are_not_orphans(
    make_settings: Callable[..., Settings], data_dir: Path, sessionmaker: Sessionmaker
) -> None:
    platform = LocalPlatform(make_settings())
    ref = await platform.create(spec("recorded0001"), no_progress)
    await add_row(
        sessionmaker,
        "recorded0001",
        "local",
        state="active",
        platform_ref=ref.data,
    )

    report = await run_sweep(sessionmaker, tools={}, grace_seconds=0, platforms=single(platform))

    assert report.orphans == [] and report.errors == []
    assert (data_dir / "recorded0001").is_dir()
    assert await platform.destroy(ref) is True


def record_after_listing(
    monkeypatch: pytest.MonkeyPatch, platform: Any, sessionmaker: Sessionmaker, ref: PlatformRef
) -> None:
    """The platform is listed, then a row recording `ref` appears (a create finishing meanwhile,
    under another id so only its platform ref can match) before the sweep's locked re-read."""
    listing = platform.status_many

    async def status_many(refs: dict[str, PlatformRef]) -> Any:
        snapshot = await listing(refs)
        await add_row(sessionmaker, "recorded0002", ref.provider, state="active", platform_ref=ref.data)
        return snapshot

    monkeypatch.setattr(platform, "status_many", status_many)


async def test_a_local_orphan_that_a_row_records_by_the_recheck_is_kept(
    make_settings: Callable[..., Settings],
    data_dir: Path,
    sessionmaker: Sessionmaker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform = LocalPlatform(make_settings())
    ref = await platform.create(spec(ORPHAN), no_progress)
    record_after_listing(monkeypatch, platform, sessionmaker, ref)

    report = await run_sweep(sessionmaker, tools={}, grace_seconds=0, platforms=single(platform))

    assert actions(report) == [(ORPHAN, ORPHAN, "kept (a row records it)")]
    assert recorded_process(data_dir, ORPHAN) is not None
    assert await platform.destroy(ref) is True


async def test_local_destroy_orphan_refuses_anything_outside_the_data_directory(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    platform = LocalPlatform(make_settings())
    outside = tmp_path / "outside000001"
    outside.mkdir()
    (tmp_path / "instances").mkdir()
    (tmp_path / "instances" / "linked000001").symlink_to(outside)

    for ref in ("../outside000001", "linked000001"):
        with pytest.raises(PermanentError):
            await platform.destroy_orphan(PlatformOrphanRef(ref=ref, name=ref, instance_id=ref))
    assert outside.is_dir()


# -- the create side of the per-instance lock ---------------------------------------------------


async def test_a_create_waits_while_the_sweep_holds_its_instance_lock(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    sessionmaker: Sessionmaker,
) -> None:
    body = {"instanceId": ORPHAN, "name": ORPHAN, "tools": []}
    async with app_client(make_settings(platform="memory")) as api, sessionmaker() as sweep:
        await sweep.execute(instances_service.instance_lock(ORPHAN).select())
        create = asyncio.create_task(api.post("/create-instance", json=body, headers=AUTH))
        await asyncio.sleep(0.5)
        assert not create.done() and memory_platform.created == []
        await sweep.commit()
        response = await asyncio.wait_for(create, 10)
        assert response.status_code == 202, response.text
        await create_and_wait(api, body)
    assert [s.instance_id for s in memory_platform.created] == [ORPHAN]


# -- railway -------------------------------------------------------------------------------------


def backdate_service(railway: Harness, service_id: str) -> None:
    for (sid, _), instance in railway.fake.store.instances.items():
        if sid == service_id:
            instance.created_at -= HOUR


async def test_railway_shared_mode_orphan_service_and_its_volume_are_destroyed_past_grace(
    railway: Harness, sessionmaker: Sessionmaker
) -> None:
    platform = railway.platform("shared")
    ref = RailwayRef.of(await platform.create(spec(ORPHAN), no_progress))
    assert ref.service_id and ref.volume_id
    store = railway.fake.store
    project = store.projects[railway.shared_project_id]
    foreign = store.seed(project, railway.shared_environment_id, "worker-billing")
    lookalike = store.seed(project, railway.shared_environment_id, "agent-dashboard")
    for service_id in (foreign.id, lookalike.id):
        backdate_service(railway, service_id)

    young = await run_sweep(sessionmaker, tools={}, grace_seconds=GRACE, platforms=single(platform))
    assert actions(young) == sorted(
        [
            (ref.service_id, ORPHAN, "kept (younger than grace)"),
            (lookalike.id, None, "reported (not named like an instance)"),
        ]
    )
    assert not store.services[ref.service_id].deleted_at

    backdate_service(railway, ref.service_id)
    old = await run_sweep(sessionmaker, tools={}, grace_seconds=GRACE, platforms=single(platform))

    assert (ref.service_id, ORPHAN, "removed") in actions(old)
    assert old.errors == []
    assert store.services[ref.service_id].deleted_at
    assert store.volumes[ref.volume_id].deleted_at
    assert sorted(store.leftovers()["services"]) == ["agent-dashboard", "worker-billing"]
    assert store.leftovers()["volumes"] == []


async def test_railway_per_instance_orphan_project_is_destroyed_and_others_kept(
    railway: Harness, sessionmaker: Sessionmaker
) -> None:
    platform = railway.platform("per-instance")
    orphan_ref = await platform.create(spec(ORPHAN), no_progress)
    kept_ref = await platform.create(spec("recorded0001"), no_progress)
    await add_row(
        sessionmaker,
        "recorded0001",
        "railway",
        state="active",
        platform_ref=kept_ref.data,
    )
    foreign = railway.fake.store.create_project("billing-api", None, TOKEN, "production")
    for project in railway.fake.store.projects.values():
        project.created_at -= HOUR

    report = await run_sweep(sessionmaker, tools={}, grace_seconds=GRACE, platforms=single(platform))

    orphan_project, kept_project = (RailwayRef.of(ref).project_id or "" for ref in (orphan_ref, kept_ref))
    assert actions(report) == [(orphan_project, ORPHAN, "removed")]
    projects = railway.fake.store.projects
    assert projects[orphan_project].deleted_at
    assert not projects[kept_project].deleted_at and not projects[foreign.id].deleted_at


@pytest.mark.parametrize("mode", ["shared", "per-instance"])
async def test_a_railway_orphan_that_a_row_records_by_the_recheck_is_kept(
    railway: Harness, sessionmaker: Sessionmaker, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    platform = railway.platform(mode)
    ref = await platform.create(spec(ORPHAN), no_progress)
    view = RailwayRef.of(ref)
    backdate_service(railway, view.service_id or "")
    for project in railway.fake.store.projects.values():
        project.created_at -= HOUR
    record_after_listing(monkeypatch, platform, sessionmaker, ref)

    report = await run_sweep(sessionmaker, tools={}, grace_seconds=GRACE, platforms=single(platform))

    listed = view.project_id if mode == "per-instance" else view.service_id
    assert actions(report) == [(listed, ORPHAN, "kept (a row records it)")]
    assert railway.fake.store.leftovers()["services"] == [f"agent-{ORPHAN}"]


async def test_railway_destroy_orphan_rechecks_the_name_and_spares_the_shared_project(
    railway: Harness,
) -> None:
    platform = railway.platform("shared")
    store = railway.fake.store
    shared = railway.shared_project_id
    stranger = store.seed(store.projects[shared], railway.shared_environment_id, "billing-api")
    refused = [
        PlatformOrphanRef(ref=stranger.id, name="billing-api", kind="service", instance_id=ORPHAN),
        PlatformOrphanRef(ref=shared, name=f"agent-{ORPHAN}", kind="project", instance_id=ORPHAN),
        PlatformOrphanRef(ref=stranger.id, name=f"agent-{ORPHAN}", kind="volume", instance_id=ORPHAN),
    ]
    for orphan in refused:
        with pytest.raises(PermanentError):
            await platform.destroy_orphan(orphan)
    assert not store.services[stranger.id].deleted_at and not store.projects[shared].deleted_at


async def test_post_sweep_removes_platform_orphans_past_the_configured_grace(
    make_settings: Callable[..., Settings], app_client: AppClient, data_dir: Path
) -> None:
    (data_dir / "leftover0001").mkdir(parents=True)
    settings = make_settings(sweep_grace_seconds=0.01, sweep_interval_seconds=0)

    async with app_client(settings) as api:
        response = await api.post("/sweep", headers=AUTH)

    assert response.status_code == 200, response.text
    assert response.json()["orphans"] == [
        {
            "kind": "platform_orphan",
            "toolId": "local",
            "resourceId": "leftover0001",
            "instanceId": "leftover0001",
            "ageSeconds": response.json()["orphans"][0]["ageSeconds"],
            "action": "removed",
        }
    ]
    assert response.json()["removed"] == 1
    assert not (data_dir / "leftover0001").exists()
