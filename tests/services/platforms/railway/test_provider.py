"""Every Platform method through the Railway provider, in both modes, against the fake over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from services.platforms.base import AtCapacity, InstanceSpec, PlatformRef
from services.platforms.railway.provider import RailwayPlatform
from services.platforms.railway.ref import RailwayRef
from tests.services.platforms.railway.harness import Harness, recorder

MODES = ["shared", "per-instance"]


def spec(instance_id: str = "abc123def456") -> InstanceSpec:
    return InstanceSpec(
        instance_id, "Agent", {"GATEWAY_TOKEN": "gw-secret", "POOL_URL": "http://pool"}, "img:1"
    )


async def wait_status(platform: RailwayPlatform, ref: PlatformRef, wanted: str) -> str | None:
    status = None
    for _ in range(100):
        status = (await platform.status_many({"i": ref})).states["i"].deploy_status
        if status == wanted:
            break
        await asyncio.sleep(0.02)
    return status


@pytest.mark.parametrize("mode", MODES)
async def test_create_makes_everything_before_one_deploy_with_every_variable(
    railway: Harness, mode: str
) -> None:
    platform = railway.platform(mode)
    seen, on_progress = recorder()
    ref = await platform.create(spec(), on_progress)

    store = railway.fake.store
    assert store.services[RailwayRef.of(ref).service_id or ""].name == "agent-abc123def456"
    instance = store.instances[(RailwayRef.of(ref).service_id or "", RailwayRef.of(ref).environment_id or "")]
    assert instance.image == "img:1"
    assert instance.variables == {
        "PORT": "8080",
        "GATEWAY_TOKEN": "gw-secret",
        "POOL_URL": "http://pool",
        "INSTANCE_ID": "abc123def456",
    }
    (deploy_id,) = store.history[
        (RailwayRef.of(ref).service_id or "", RailwayRef.of(ref).environment_id or "")
    ]
    # The single deploy saw every variable, the volume and the domain from its start.
    assert store.deployments[deploy_id].variables == instance.variables
    assert store.volume_mount(RailwayRef.of(ref).service_id or "") is not None
    assert RailwayRef.of(ref).domain and ref.url == f"http://{RailwayRef.of(ref).domain}"
    assert (
        store.service_domain(RailwayRef.of(ref).service_id or "", RailwayRef.of(ref).environment_id or "")
        is not None
    )
    # Write-ahead: each resource was reported as soon as it existed.
    assert [bool(RailwayRef.of(r).service_id) for r in seen][-3:] == [True, True, True]
    assert seen[-1] == ref
    if mode == "per-instance":
        assert (
            RailwayRef.of(seen[0]).project_id == RailwayRef.of(ref).project_id
            and RailwayRef.of(seen[0]).service_id is None
        )
        assert store.projects[RailwayRef.of(ref).project_id or ""].name == "agent-abc123def456"
    assert await wait_status(platform, ref, "running") == "running"


async def test_create_costs_four_calls_in_shared_mode(railway: Harness) -> None:
    """Shared mode: ServiceCreate, VolumeCreate, ServiceDomainCreate, EnvironmentPatchCommit = 4."""
    railway.shared_project()
    platform = railway.platform("shared", environment_id=railway.shared_environment_id)
    _, on_progress = recorder()
    await platform.create(spec(), on_progress)
    assert sum(railway.fake.calls.values()) == 4
    assert dict(railway.fake.calls) == {
        "ServiceCreate": 1,
        "VolumeCreate": 1,
        "ServiceDomainCreate": 1,
        "EnvironmentPatchCommit": 1,
    }


async def test_create_costs_five_calls_in_per_instance_mode(railway: Harness) -> None:
    """Per-instance mode: ProjectCreate + the four of shared mode = 5."""
    _, on_progress = recorder()
    await railway.platform("per-instance").create(spec(), on_progress)
    assert sum(railway.fake.calls.values()) == 5
    assert railway.fake.calls["ProjectCreate"] == 1


async def test_names_fit_railway_rules(railway: Harness) -> None:
    platform = railway.platform("shared")
    name = platform.resource_name("abc123def456")
    assert name == name.lower() and len(name) <= 32


@pytest.mark.parametrize("mode", MODES)
async def test_status_many_reports_missing_for_instances_absent_from_the_listing(
    railway: Harness, mode: str
) -> None:
    platform = railway.platform(mode)
    _, on_progress = recorder()
    kept = await platform.create(spec("aaaaaaaaaaaa"), on_progress)
    gone = await platform.create(spec("bbbbbbbbbbbb"), on_progress)
    if mode == "per-instance":
        railway.fake.store.delete_project(RailwayRef.of(gone).project_id or "")
    else:
        railway.fake.store.delete_service(RailwayRef.of(gone).service_id or "")
    never = RailwayRef(mode=mode).write(PlatformRef(provider="railway"))
    snapshot = await platform.status_many({"kept": kept, "gone": gone, "never": never})
    # Absent from one listing is no proof of removal: the pool counts it toward its death threshold.
    assert snapshot.states["gone"].deploy_status == "missing"
    assert snapshot.states["never"].deploy_status is None
    assert snapshot.states["kept"].deploy_status in {"pending", "deploying", "running"}
    assert snapshot.orphans == []


@pytest.mark.parametrize("mode", MODES)
async def test_status_many_lists_orphans_with_our_prefix(railway: Harness, mode: str) -> None:
    platform = railway.platform(mode)
    _, on_progress = recorder()
    ref = await platform.create(spec("aaaaaaaaaaaa"), on_progress)
    await platform.create(spec("cccccccccccc"), on_progress)
    snapshot = await platform.status_many({"a": ref})
    assert [orphan.name for orphan in snapshot.orphans] == ["agent-cccccccccccc"]


@pytest.mark.parametrize("mode", MODES)
async def test_configure_upserts_without_deploy_unless_asked(railway: Harness, mode: str) -> None:
    platform = railway.platform(mode)
    _, on_progress = recorder()
    ref = await platform.create(spec(), on_progress)
    key = (RailwayRef.of(ref).service_id or "", RailwayRef.of(ref).environment_id or "")
    await platform.configure(ref, {"EXTRA": "1"}, redeploy=False)
    assert railway.fake.store.instances[key].variables["EXTRA"] == "1"
    assert len(railway.fake.store.history[key]) == 1
    await platform.configure(ref, {"EXTRA": "2"}, redeploy=True)
    assert len(railway.fake.store.history[key]) == 2
    assert railway.fake.store.latest_deployment(*key).variables["EXTRA"] == "2"  # type: ignore[union-attr]


@pytest.mark.parametrize("mode", MODES)
async def test_redeploy_rolls_to_the_given_or_configured_image(railway: Harness, mode: str) -> None:
    platform = railway.platform(mode)
    _, on_progress = recorder()
    ref = await platform.create(spec(), on_progress)
    key = (RailwayRef.of(ref).service_id or "", RailwayRef.of(ref).environment_id or "")
    assert await platform.redeploy(ref, image="img:2") == "pending"
    assert railway.fake.store.latest_deployment(*key).image == "img:2"  # type: ignore[union-attr]
    await platform.redeploy(ref, image=None)
    assert len(railway.fake.store.history[key]) == 3
    assert railway.fake.store.latest_deployment(*key).image == "img:2"  # type: ignore[union-attr]


async def test_configure_and_redeploy_work_from_a_ref_after_the_mode_setting_changed(
    railway: Harness,
) -> None:
    _, on_progress = recorder()
    ref = await railway.platform("per-instance").create(spec(), on_progress)
    now_shared = railway.platform("shared")
    await now_shared.configure(ref, {"EXTRA": "1"}, redeploy=False)
    await now_shared.redeploy(ref, image=None)
    assert (
        railway.fake.store.instances[
            (RailwayRef.of(ref).service_id or "", RailwayRef.of(ref).environment_id or "")
        ].variables["EXTRA"]
        == "1"
    )
    assert await now_shared.destroy(ref) is True
    assert railway.fake.store.projects[RailwayRef.of(ref).project_id or ""].deleted_at is not None


@pytest.mark.parametrize("mode", MODES)
async def test_destroy_leaves_nothing_and_a_second_destroy_reports_gone(railway: Harness, mode: str) -> None:
    platform = railway.platform(mode)
    _, on_progress = recorder()
    ref = await platform.create(spec(), on_progress)
    assert await platform.destroy(ref) is True
    leftovers = railway.fake.store.leftovers()
    expected_projects = ["fleet"] if mode == "shared" else []
    assert leftovers == {"projects": expected_projects, "services": [], "volumes": [], "domains": []}
    assert await platform.destroy(ref) is False
    if mode == "shared":
        assert railway.fake.calls["VolumeDelete"] == 2 and railway.fake.calls["ServiceDelete"] == 2
    else:
        assert railway.fake.calls["ProjectDelete"] == 2


@pytest.mark.parametrize("mode", MODES)
async def test_failed_create_rolls_back_what_it_made(railway: Harness, mode: str) -> None:
    platform = railway.platform(mode, max_attempts=1)
    seen, on_progress = recorder()

    # The call after the volume (ServiceDomainCreate) is refused with a permanent error.
    async def failing_progress(ref: PlatformRef) -> None:
        await on_progress(ref)
        if RailwayRef.of(ref).volume_id:
            railway.fake.fail_next(1, message="Invalid service name")

    with pytest.raises(Exception, match="Invalid service name"):
        await platform.create(spec(), failing_progress)
    assert RailwayRef.of(seen[-1]).volume_id is not None
    leftovers = railway.fake.store.leftovers()
    assert leftovers["services"] == [] and leftovers["volumes"] == []
    if mode == "per-instance":
        assert leftovers["projects"] == []


async def test_aclose_leaves_the_shared_http_client_open(railway: Harness) -> None:
    platform = railway.platform("shared")
    await platform.aclose()
    assert not railway.http.is_closed


async def test_status_many_observes_a_fleet_mid_way_through_a_mode_change(railway: Harness) -> None:
    _, on_progress = recorder()
    old = await railway.platform("shared").create(spec("aaaaaaaaaaaa"), on_progress)
    new_platform = railway.platform("per-instance")
    new = await new_platform.create(spec("bbbbbbbbbbbb"), on_progress)
    railway.fake.calls.clear()
    snapshot = await new_platform.status_many({"old": old, "new": new})
    assert snapshot.states["old"].deploy_status is not None
    assert snapshot.states["new"].deploy_status is not None
    assert snapshot.orphans == []
    assert snapshot.api_calls == 3
    assert railway.fake.calls == {
        "Projects": 1,
        "EnvironmentStatusBatch": 1,
        "EnvironmentServiceInstances": 1,
    }


async def test_a_full_shared_project_answers_at_capacity_and_the_create_leaves_nothing(
    railway: Harness,
) -> None:
    railway.fake.settings.services_per_project = 1
    platform = railway.platform("shared")
    made, on_progress = recorder()
    await platform.create(spec("full00000001"), on_progress)

    with pytest.raises(AtCapacity, match="maximum number of services \\(1\\)"):
        await platform.create(spec("full00000002"), on_progress)
    # Refused, not retried (placement tries the next platform), and nothing of it is left.
    assert railway.fake.calls["ServiceCreate"] == 2
    assert railway.fake.store.leftovers()["services"] == ["agent-full00000001"]
