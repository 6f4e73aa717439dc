"""The `local` platform: each instance is a `python -m runtime` process on a free loopback port.

Layout under `local_data_dir`: `<instance_id>/` holds our bookkeeping (`env.json` with the
instance's variables, `process.json` with the live process, `runtime.log`) and `data/`, the
runtime's own data dir. Processes run in their own session so they outlive a services restart;
`process.json` (pid + create time + command line) lets a new services process re-adopt them
and tell a live runtime from an unrelated process that got the same pid.

The instance's `PlatformRef.data` (opaque above this module) is `LocalRefData`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

import httpx
import psutil

from runtime.launcher import runtime_command, runtime_env
from services.config import Settings
from services.platforms.base import (
    FleetSnapshot,
    InstanceSpec,
    PlatformOrphanRef,
    PlatformRef,
    PlatformState,
    ProgressCallback,
)
from services.platforms.local.process import (
    await_cmdline,
    free_port,
    live_process,
    port_answers,
    read_json,
    write_private,
)
from shared.errors import NotFound, PermanentError
from shared.ids import is_instance_id
from shared.logging import get_logger
from shared.schemas import DeployState

if TYPE_CHECKING:
    from services.platforms.registry import BuildContext

log = get_logger("services.platforms.local")

# Variables the runtime launcher sets itself from the spec.
_LAUNCHER_KEYS = ("INSTANCE_ID", "GATEWAY_TOKEN", "PORT", "RUNTIME_DATA_DIR")
# What an instance may inherit from the services process. Everything else (SERVICES_API_KEY,
# database URLs, vendor management keys) stays out: an agent must never see services' secrets.
_INHERITED = frozenset({"PATH", "HOME", "LANG", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "SYSTEMROOT"})


class LocalRefData(TypedDict, total=False):
    """The local provider's view of `PlatformRef.data`."""

    data_dir: str  # <local_data_dir>/<instance_id>: our bookkeeping and the runtime's data
    port: int
    pid: int
    create_time: float


def _local(ref: PlatformRef) -> LocalRefData:
    return cast(LocalRefData, ref.data)


class LocalPlatform:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        self._root = Path(settings.local_data_dir).resolve()
        # Every directory under the root is this platform's (its orphan listing covers them all).
        self.territory = ("local", str(self._root))
        self._extra_env = dict(settings.local_runtime_env)
        self._grace = settings.local_stop_grace_seconds
        # Popen handles of children we started, so their exit is reaped (no zombies).
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    # -- paths -------------------------------------------------------------------------------

    def _dir_for(self, ref: PlatformRef) -> Path | None:
        raw = _local(ref).get("data_dir")
        if not raw:
            return None
        path = Path(raw).resolve()
        # Never touch anything outside our root, whatever a row says.
        if path.parent != self._root:
            return None
        return path

    # -- process control ---------------------------------------------------------------------

    def _spawn(self, instance_dir: Path, instance_id: str, port: int) -> dict[str, Any]:
        env_file = read_json(instance_dir / "env.json") or {}
        extra = {k: v for k, v in {**env_file, **self._extra_env}.items() if k not in _LAUNCHER_KEYS}
        launched = runtime_env(
            instance_id=instance_id,
            gateway_token=str(env_file.get("GATEWAY_TOKEN", "")),
            port=port,
            data_dir=instance_dir / "data",
            extra=extra,
        )
        env = {
            key: value
            for key, value in launched.items()
            if key in _INHERITED or key.startswith("LC_") or key in extra or key in _LAUNCHER_KEYS
        }
        command = runtime_command()
        with open(instance_dir / "runtime.log", "ab") as logfile:
            child = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=logfile,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[child.pid] = child
        proc = psutil.Process(child.pid)
        await_cmdline(proc)
        info = {
            "pid": child.pid,
            "port": port,
            "create_time": proc.create_time(),
            "cmdline": command,
            "started_at": datetime.now(UTC).isoformat(),
        }
        write_private(instance_dir / "process.json", info)
        log.info("local.process.started", instance_id=instance_id, pid=child.pid, port=port)
        return info

    def _reap(self) -> None:
        for pid, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[pid]

    async def _stop(self, info: dict[str, Any] | None) -> bool:
        proc = live_process(info)
        if proc is None:
            self._reap()
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._grace
        while loop.time() < deadline and live_process(info) is not None:
            self._reap()
            await asyncio.sleep(0.05)
        if live_process(info) is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(psutil.Error):
                await asyncio.to_thread(proc.wait, 5)
        child = self._children.pop(proc.pid, None)
        if child is not None:
            await asyncio.to_thread(child.wait)
        return True

    # -- Platform protocol -------------------------------------------------------------------

    async def create(self, spec: InstanceSpec, on_progress: ProgressCallback) -> PlatformRef:
        instance_dir = self._root / spec.instance_id
        # A create retried after a crash must not leave the first attempt's process running.
        await self._stop(read_json(instance_dir / "process.json"))
        (instance_dir / "data").mkdir(parents=True, exist_ok=True)
        write_private(instance_dir / "env.json", spec.env)
        port = free_port()
        data = LocalRefData(data_dir=str(instance_dir), port=port)
        ref = PlatformRef(provider=self.name, data=dict(data), url=f"http://127.0.0.1:{port}")
        # The directory exists now: record it before the process, so destroy can always find it.
        await on_progress(ref)
        info = self._spawn(instance_dir, spec.instance_id, port)
        _local(ref).update(LocalRefData(pid=info["pid"], create_time=info["create_time"]))
        await on_progress(ref)
        return ref

    async def _state_of(self, ref: PlatformRef) -> PlatformState:
        instance_dir = self._dir_for(ref)
        if instance_dir is None or not instance_dir.exists():
            return PlatformState(deploy_status="removed", url=ref.url)
        info = read_json(instance_dir / "process.json")
        if info is None:
            # The directory was made but no process ever started: a create that died half-way.
            return PlatformState(deploy_status="failed", url=ref.url)
        if live_process(info) is None:
            return PlatformState(deploy_status="crashed", url=ref.url)
        answers = await port_answers(int(info["port"]))
        return PlatformState(deploy_status="running" if answers else "deploying", url=ref.url)

    async def status_many(self, refs: dict[str, PlatformRef], *, listing: bool = True) -> FleetSnapshot:
        self._reap()
        ids = list(refs)
        states = await asyncio.gather(*(self._state_of(refs[i]) for i in ids))
        orphans = self._orphans(set(ids)) if listing else []
        return FleetSnapshot(states=dict(zip(ids, states, strict=True)), orphans=orphans)

    def _orphans(self, known: set[str]) -> list[PlatformOrphanRef]:
        """Directories under our root that no given ref names: with a live process (aged by the
        process) or without one (a leftover directory, aged by its last change)."""
        if not self._root.is_dir():
            return []
        orphans = []
        for entry in sorted(self._root.iterdir()):
            if entry.name in known or not entry.is_dir() or entry.is_symlink():
                continue
            proc = live_process(read_json(entry / "process.json"))
            try:
                started = proc.create_time() if proc is not None else entry.stat().st_mtime
            except (psutil.Error, OSError):
                continue
            orphans.append(
                PlatformOrphanRef(
                    ref=entry.name,
                    name=entry.name,
                    created_at=datetime.fromtimestamp(started, UTC),
                    kind="process" if proc is not None else "directory",
                    instance_id=entry.name if is_instance_id(entry.name) else None,
                )
            )
        return orphans

    async def destroy(self, ref: PlatformRef) -> bool:
        instance_dir = self._dir_for(ref)
        if instance_dir is None or not instance_dir.exists():
            return False
        await self._stop(read_json(instance_dir / "process.json"))
        await asyncio.to_thread(shutil.rmtree, instance_dir, True)
        log.info("local.instance.destroyed", data_dir=str(instance_dir))
        return True

    async def destroy_orphan(self, orphan: PlatformOrphanRef) -> bool:
        if orphan.instance_id is None or orphan.ref != orphan.instance_id:
            raise PermanentError(f"local orphan {orphan.ref!r} is not named like an instance; left alone")
        # `_dir_for` resolves the path and refuses anything that is not directly under our root.
        ref = PlatformRef(provider=self.name, data=dict(self.orphan_match(orphan)))
        if self._dir_for(ref) is None:
            raise PermanentError(f"local orphan {orphan.ref!r} is outside the data directory; left alone")
        return await self.destroy(ref)

    def orphan_match(self, orphan: PlatformOrphanRef) -> dict[str, Any]:
        """An orphan is a directory under our root: recorded by the ref whose data_dir it is."""
        return dict(LocalRefData(data_dir=str(self._root / orphan.ref)))

    async def configure(self, ref: PlatformRef, variables: dict[str, str], *, redeploy: bool) -> None:
        instance_dir = self._require_dir(ref)
        env = read_json(instance_dir / "env.json") or {}
        env.update(variables)
        write_private(instance_dir / "env.json", env)
        if redeploy:
            await self.redeploy(ref, image=None)

    async def redeploy(self, ref: PlatformRef, *, image: str | None) -> DeployState | None:
        # `image` has no meaning here: every local instance runs this checkout's runtime.
        instance_dir = self._require_dir(ref)
        await self._stop(read_json(instance_dir / "process.json"))
        port = int(_local(ref).get("port") or free_port())
        info = self._spawn(instance_dir, instance_dir.name, port)
        _local(ref).update(LocalRefData(pid=info["pid"], create_time=info["create_time"], port=port))
        return "deploying"

    def _require_dir(self, ref: PlatformRef) -> Path:
        instance_dir = self._dir_for(ref)
        if instance_dir is None or not instance_dir.exists():
            raise NotFound("the instance has no local process directory")
        return instance_dir

    async def aclose(self) -> None:
        # Processes are left running on purpose: the next services process re-adopts them.
        self._reap()


# What a local platform's `settings` in SERVICES_PLATFORMS may override.
LOCAL_SETTINGS = ("local_data_dir", "local_runtime_env", "local_stop_grace_seconds")


def build_local_platform(
    settings: Settings, http_client: httpx.AsyncClient, context: BuildContext | None = None
) -> LocalPlatform:
    overrides = dict(context.config.settings) if context else {}
    unknown = sorted(set(overrides) - set(LOCAL_SETTINGS))
    if unknown:
        raise ValueError(
            f"platform {context.config.name if context else 'local'!r}: unknown local settings "
            f"{', '.join(unknown)}; choose from {', '.join(LOCAL_SETTINGS)}"
        )
    # Validated like the environment's values (a grace that is not a number is refused here).
    own = Settings.model_validate({**settings.model_dump(include=set(LOCAL_SETTINGS)), **overrides})
    return LocalPlatform(own)
