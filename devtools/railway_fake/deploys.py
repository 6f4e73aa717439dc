"""Deployments on the fake: QUEUED → BUILDING → DEPLOYING → SUCCESS, each step after a set delay.

At DEPLOYING the fake starts a real reference-runtime process (`python -m runtime`) with the
variables of the deployment, the way Railway starts the container. Routing: the service's domain
is `127.0.0.1:<port>`, the port is reserved when the domain is created, and the runtime listens
on it (the fake sets `PORT`, as Railway injects `PORT`). So a domain answers HTTP exactly when a
deployment runs, and health probes and `/pool/provision` go to the real process. A volume mounted
on the service is a directory under the fake's data root, handed over as `RUNTIME_DATA_DIR`.

Outcomes can be planned per deploy: "success", "fail" (FAILED while building), "crash" (CRASHED
soon after SUCCESS), "hang" (never leaves BUILDING), or per image (`image_outcomes`: every deploy of
that image ends so, the way a broken release does). A runtime that exits by itself turns its
deployment CRASHED.

With a `faults` profile (devtools/faults.py) each deploy takes its own time from the profile's
`deploy_seconds` and its runtime boots for `boot_seconds` (`RUNTIME_STARTUP_DELAY`) before it
answers ready, both scaled by the profile's time scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from devtools.faults import Faults
from devtools.railway_fake.store import Deployment, ServiceInstance, Store
from runtime.launcher import runtime_command, runtime_env


@dataclass
class DeploySettings:
    queued_seconds: float = 0.05
    building_seconds: float = 0.05
    deploying_seconds: float = 0.1
    crash_after_seconds: float = 0.2
    launch_processes: bool = True
    # Extra env for every runtime process (RUNTIME_STARTUP_DELAY and other runtime knobs).
    runtime_env: dict[str, str] = field(default_factory=dict)
    faults: Faults | None = None
    # Image → the outcome of every deploy of it (a release that fails or crashes however often it is tried).
    image_outcomes: dict[str, str] = field(default_factory=dict)


class DeployEngine:
    def __init__(self, store: Store, settings: DeploySettings, data_root: Path) -> None:
        self.store = store
        self.settings = settings
        self.data_root = data_root
        self.default_outcome = "success"
        self.planned: deque[str] = deque()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.processes: dict[tuple[str, str], asyncio.subprocess.Process] = {}

    def plan(self, outcome: str, count: int = 1) -> None:
        """The next `count` deploys end in `outcome` instead of the default."""
        self.planned.extend([outcome] * count)

    def start(self, instance: ServiceInstance) -> Deployment:
        deployment = self.store.add_deployment(instance, "QUEUED")
        outcome = self.settings.image_outcomes.get(instance.image or "")
        if outcome is None:
            outcome = self.planned.popleft() if self.planned else self.default_outcome
        task = asyncio.get_running_loop().create_task(self._run(deployment, outcome))
        self._tasks[deployment.id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(deployment.id, None))
        return deployment

    def _current(self, deployment: Deployment) -> bool:
        latest = self.store.latest_deployment(deployment.service_id, deployment.environment_id)
        return latest is not None and latest.id == deployment.id

    def _durations(self) -> tuple[float, float, float, float]:
        """(queued, building, deploying, runtime boot) seconds for one deploy."""
        settings, faults = self.settings, self.settings.faults
        if faults is None or not faults.active:
            return settings.queued_seconds, settings.building_seconds, settings.deploying_seconds, 0.0
        total = faults.uniform(faults.profile.deploy_seconds)
        return total * 0.2, total * 0.5, total * 0.3, faults.uniform(faults.profile.boot_seconds)

    async def _run(self, deployment: Deployment, outcome: str) -> None:
        settings = self.settings
        queued, building, deploying, boot = self._durations()
        await asyncio.sleep(queued)
        deployment.move("BUILDING")
        if outcome == "hang":
            return
        await asyncio.sleep(building)
        if outcome == "fail":
            deployment.move("FAILED")
            return
        deployment.move("DEPLOYING")
        key = (deployment.service_id, deployment.environment_id)
        # The new deployment replaces the old one: its process stops, its status becomes REMOVED.
        for old_id in self.store.history.get(key, [])[:-1]:
            old = self.store.deployments[old_id]
            if old.status not in ("REMOVED", "FAILED", "CRASHED"):
                old.move("REMOVED")
        await self.stop_process(key)
        process = await self._launch(deployment, boot) if settings.launch_processes else None
        await asyncio.sleep(deploying)
        if process is not None and process.returncode is not None:
            deployment.move("CRASHED")
            return
        deployment.move("SUCCESS")
        if outcome == "crash":
            await asyncio.sleep(settings.crash_after_seconds)
            await self.stop_process(key)
            deployment.move("CRASHED")
        elif process is not None:
            await process.wait()
            if deployment.status == "SUCCESS" and self._current(deployment):
                deployment.move("CRASHED")

    async def _launch(self, deployment: Deployment, boot: float = 0.0) -> asyncio.subprocess.Process:
        store = self.store
        sid, eid = deployment.service_id, deployment.environment_id
        domain = store.service_domain(sid, eid)
        port = domain.port if domain else free_port()
        mount = store.volume_mount(sid)
        data_dir = self.data_root / ("volumes/" + mount.volume_id if mount else "services/" + sid)
        data_dir.mkdir(parents=True, exist_ok=True)
        variables = deployment.variables
        injected = {
            "PORT": str(port),
            "RUNTIME_DATA_DIR": str(data_dir),
            "RAILWAY_PROJECT_ID": deployment.project_id,
            "RAILWAY_ENVIRONMENT_ID": eid,
            "RAILWAY_SERVICE_ID": sid,
            "RAILWAY_DEPLOYMENT_ID": deployment.id,
            "RAILWAY_PUBLIC_DOMAIN": domain.domain if domain else "",
            "RAILWAY_VOLUME_MOUNT_PATH": mount.mount_path if mount else "",
        }
        if boot > 0:
            injected["RUNTIME_STARTUP_DELAY"] = f"{boot:.3f}"
        env = runtime_env(
            instance_id=variables.get("INSTANCE_ID", sid),
            gateway_token=variables.get("GATEWAY_TOKEN", ""),
            port=port,
            data_dir=data_dir,
            extra={**self.settings.runtime_env, **variables, **injected},
        )
        log_path = self.data_root / "logs" / f"{sid}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                *runtime_command(), env=env, stdout=log_file, stderr=asyncio.subprocess.STDOUT
            )
        self.processes[(sid, eid)] = process
        return process

    async def stop_process(self, key: tuple[str, str]) -> None:
        process = self.processes.pop(key, None)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout=5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    async def stop_service(self, service_id: str) -> None:
        for deployment in self.store.service_deployments(service_id):
            task = self._tasks.pop(deployment.id, None)
            if task is not None:
                task.cancel()
        for key in [key for key in self.processes if key[0] == service_id]:
            await self.stop_process(key)

    def running(self) -> list[tuple[str, str]]:
        return [key for key, process in self.processes.items() if process.returncode is None]

    async def aclose(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in list(self.processes):
            await self.stop_process(key)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
