"""Real child processes for fault tests (a pool replica, a runtime instance), always reaped."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from runtime.launcher import runtime_command, runtime_env
from tests.support import free_port


class Child:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc = proc
        self.url = url
        self.log = log

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no cleanup, as a crashed host or an OOM kill would be."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


async def _wait_ready(child: Child, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=1) as http:
        while time.monotonic() < deadline:
            if child.proc.poll() is not None:
                raise RuntimeError(f"process exited early:\n{child.output()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(child.url + path)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"not ready after {timeout}s:\n{child.output()[-3000:]}")


@contextlib.asynccontextmanager
async def child_process(
    command: list[str], env: dict[str, str], *, port: int, log: Path, ready_path: str, timeout: float = 30
) -> AsyncIterator[Child]:
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    child = Child(proc, f"http://127.0.0.1:{port}", log)
    try:
        await _wait_ready(child, ready_path, timeout)
        yield child
    finally:
        if proc.poll() is None:
            child.kill()


def pool_process(env: dict[str, str], log: Path) -> contextlib.AbstractAsyncContextManager[Child]:
    """`python -m pool` on a free port; `env` holds the POOL_* settings."""
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POOL_", "SERVICES_"))}
    full = {**base, **env, "POOL_PORT": str(port), "POOL_HOST": "127.0.0.1"}
    return child_process([sys.executable, "-m", "pool"], full, port=port, log=log, ready_path="/healthz")


def runtime_process(
    instance_id: str, token: str, data_dir: Path, **knobs: str
) -> contextlib.AbstractAsyncContextManager[Child]:
    """One reference runtime (`python -m runtime`), with RUNTIME_* knobs."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = runtime_env(instance_id=instance_id, gateway_token=token, port=port, data_dir=data_dir, extra=knobs)
    return child_process(
        runtime_command(), env, port=port, log=data_dir / "runtime.log", ready_path="/pool/health"
    )
