from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest

from services.config import Settings
from services.platforms.base import InstanceSpec, PlatformRef
from services.platforms.local.process import live_process
from services.platforms.local.provider import LocalPlatform

TOKEN = "pool_gw_local-platform-test-token"


def spec(instance_id: str, **env: str) -> InstanceSpec:
    return InstanceSpec(instance_id=instance_id, name=instance_id, env={"GATEWAY_TOKEN": TOKEN, **env})


async def wait_for_status(
    platform: LocalPlatform, ref: PlatformRef, wanted: str, timeout: float = 20
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = None
    while loop.time() < deadline:
        seen = (await platform.status_many({"x": ref})).states["x"].deploy_status
        if seen == wanted:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"status stayed {seen}, wanted {wanted}")


async def create(
    platform: LocalPlatform, instance_id: str, **env: str
) -> tuple[PlatformRef, list[dict[str, object]]]:
    progress: list[dict[str, object]] = []

    async def on_progress(ref: PlatformRef) -> None:
        progress.append(dict(ref.data))

    return await platform.create(spec(instance_id, **env), on_progress), progress


async def test_create_reports_deploying_until_the_port_answers_then_success(
    make_settings: Callable[..., Settings], data_dir: Path
) -> None:
    platform = LocalPlatform(make_settings(local_runtime_env={"RUNTIME_STARTUP_DELAY": "1.5"}))
    ref, progress = await create(platform, "aaaaaaaaaaa1")

    # The directory is recorded before the process exists, the pid as soon as it does.
    assert progress[0].keys() == {"data_dir", "port"}
    assert {"pid", "create_time"} <= progress[1].keys()
    assert ref.url == f"http://127.0.0.1:{ref.data['port']}"
    assert (await platform.status_many({"x": ref})).states["x"].deploy_status == "deploying"
    await wait_for_status(platform, ref, "running")
    # The runtime's start-up delay is readiness, not listening: the probe, not the platform, sees it.
    async with httpx.AsyncClient() as client:
        health = await client.get(f"{ref.url}/pool/health")
        assert health.status_code == 503
        await asyncio.sleep(1.5)
        health = await client.get(f"{ref.url}/pool/health")
    assert health.json()["ready"] is True
    assert (data_dir / "aaaaaaaaaaa1" / "data").is_dir()
    assert await platform.destroy(ref) is True


async def test_destroy_stops_the_process_and_removes_its_dir_and_missing_is_success(
    make_settings: Callable[..., Settings], data_dir: Path
) -> None:
    platform = LocalPlatform(make_settings())
    ref, _ = await create(platform, "aaaaaaaaaaa2")
    info = json.loads((data_dir / "aaaaaaaaaaa2" / "process.json").read_text())
    assert live_process(info) is not None

    assert await platform.destroy(ref) is True

    # By pid, create time and command line: a pid reused by another test's process is not ours.
    assert live_process(info) is None
    assert not (data_dir / "aaaaaaaaaaa2").exists()
    assert await platform.destroy(ref) is False
    assert (await platform.status_many({"x": ref})).states["x"].deploy_status == "removed"


async def test_a_killed_process_is_crashed_and_a_reused_pid_is_not_mistaken_for_it(
    make_settings: Callable[..., Settings], data_dir: Path
) -> None:
    platform = LocalPlatform(make_settings())
    ref, _ = await create(platform, "aaaaaaaaaaa3")
    await wait_for_status(platform, ref, "running")

    os.killpg(int(ref.data["pid"]), signal.SIGKILL)
    await wait_for_status(platform, ref, "crashed", timeout=5)

    # Another live process now holds the recorded pid (our own): still crashed, not "alive".
    record = data_dir / "aaaaaaaaaaa3" / "process.json"
    info = json.loads(record.read_text())
    record.write_text(json.dumps({**info, "pid": os.getpid()}))
    assert (await platform.status_many({"x": ref})).states["x"].deploy_status == "crashed"
    assert await platform.destroy(ref) is True
    assert psutil.pid_exists(os.getpid())


async def test_a_new_platform_object_re_adopts_live_processes_and_lists_orphans(
    make_settings: Callable[..., Settings],
) -> None:
    first = LocalPlatform(make_settings())
    ref, _ = await create(first, "aaaaaaaaaaa4")
    orphan_ref, _ = await create(first, "aaaaaaaaaaa5")
    await wait_for_status(first, ref, "running")

    restarted = LocalPlatform(make_settings())
    snapshot = await restarted.status_many({"aaaaaaaaaaa4": ref})

    assert snapshot.states["aaaaaaaaaaa4"].deploy_status == "running"
    assert [o.ref for o in snapshot.orphans] == ["aaaaaaaaaaa5"]
    assert await restarted.destroy(ref) is True
    assert await restarted.destroy(orphan_ref) is True


async def test_configure_with_redeploy_restarts_with_the_new_variables(
    make_settings: Callable[..., Settings], data_dir: Path
) -> None:
    platform = LocalPlatform(make_settings())
    ref, _ = await create(platform, "aaaaaaaaaaa6")
    old_pid = ref.data["pid"]

    await platform.configure(ref, {"RUNTIME_NEVER_READY": "true"}, redeploy=False)
    assert ref.data["pid"] == old_pid
    await platform.configure(ref, {"RUNTIME_NEVER_READY": "true"}, redeploy=True)

    assert ref.data["pid"] != old_pid
    await wait_for_status(platform, ref, "running")
    env = psutil.Process(int(ref.data["pid"])).environ()
    assert env["RUNTIME_NEVER_READY"] == "true"
    assert env["GATEWAY_TOKEN"] == TOKEN
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{ref.url}/pool/health")).status_code == 503
    assert await platform.destroy(ref) is True


async def test_a_ref_pointing_outside_the_data_root_is_never_touched(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    outside = tmp_path / "precious"
    outside.mkdir()
    platform = LocalPlatform(make_settings())

    assert await platform.destroy(PlatformRef(provider="local", data={"data_dir": str(outside)})) is False
    assert outside.exists()


async def test_the_instance_sees_its_own_env_and_none_of_the_services_secrets(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVICES_API_KEY", "services-master-key")
    monkeypatch.setenv("OPENROUTER_MANAGEMENT_KEY", "vendor-management-key")
    platform = LocalPlatform(make_settings(local_runtime_env={"RUNTIME_PROVISION_DELAY": "0.1"}))
    ref, _ = await create(platform, "aaaaaaaaaaa7", ECHO_API_KEY="echo-secret")
    # /proc/<pid>/environ can read empty for a moment right after exec: look once it serves.
    await wait_for_status(platform, ref, "running")

    env = psutil.Process(int(ref.data["pid"])).environ()
    assert "SERVICES_API_KEY" not in env and "OPENROUTER_MANAGEMENT_KEY" not in env
    assert env["ECHO_API_KEY"] == "echo-secret"
    assert env["RUNTIME_PROVISION_DELAY"] == "0.1"
    assert (env["INSTANCE_ID"], env["PORT"]) == ("aaaaaaaaaaa7", str(ref.data["port"]))
    assert await platform.destroy(ref) is True


async def test_creating_again_after_a_crash_replaces_the_first_process(
    make_settings: Callable[..., Settings], data_dir: Path
) -> None:
    platform = LocalPlatform(make_settings())
    first, _ = await create(platform, "aaaaaaaaaaa8")
    second, _ = await create(platform, "aaaaaaaaaaa8")

    assert (
        not psutil.pid_exists(int(first.data["pid"]))
        or psutil.Process(int(first.data["pid"])).status() == psutil.STATUS_ZOMBIE
    )
    assert await platform.destroy(second) is True
