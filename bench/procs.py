"""Processes the benchmarks run: PostgreSQL, the pool, services and the fake fleet, each in a
process of its own so the load generator never shares their event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from devtools.pg import EmbeddedPostgres
from devtools.serve import serve_asgi
from shared.migrations import upgrade_async

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """A PostgreSQL cluster in a temp dir for the whole run; yields its admin URL."""
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as folder:
        server = EmbeddedPostgres(Path(folder)).start()
        try:
            yield server.url("postgres")
        finally:
            server.stop()


def _with_database(admin_url: str, database: str) -> str:
    return admin_url.rsplit("/", 1)[0] + "/" + database


async def fresh_database(admin_url: str, app: str) -> str:
    """A new database migrated with the app's Alembic tree (`pool` or `services`)."""
    name = f"bench_{app}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = _with_database(admin_url, name)
    await upgrade_async(app, url)
    return url


async def drop_database(admin_url: str, url: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def rss_mb(self) -> float:
        try:
            return float(psutil.Process(self.popen.pid).memory_info().rss) / 2**20
        except psutil.NoSuchProcess:
            return float("nan")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> Proc:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    with open(log_path, "ab") as log_file:
        popen = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.PIPE if name == "fleet" else log_file,
            stderr=log_file,
        )
    return Proc(name, popen, log_path)


async def wait_http(proc: Proc, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(proc.url + path)).status_code < 500:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{proc.name} did not answer {path} within {timeout}s:\n{proc.tail()}")


@contextlib.asynccontextmanager
async def app_process(
    name: str, module: str, env: dict[str, str], log_dir: Path, python_args: tuple[str, ...] = ()
) -> AsyncIterator[Proc]:
    """`python -m pool`, `python -m services` (or `bench.floor`) on a free port, stopped on exit;
    `python_args` go before `-m` (a profiler: `("-m", "cProfile", "-o", path)`)."""
    port = free_port()
    prefix = {"pool": "POOL_", "services": "SERVICES_"}.get(module, "FLOOR_")
    proc = _spawn(name, [*python_args, "-m", module], {**env, f"{prefix}PORT": str(port)}, log_dir)
    proc.url = f"http://127.0.0.1:{port}"
    try:
        await wait_http(proc, "/healthz")
        yield proc
    finally:
        proc.stop()


@dataclass
class FleetProc(Proc):
    ports: tuple[int, ...] = ()


@contextlib.asynccontextmanager
async def fleet_process(
    log_dir: Path, *, provision_delay: float = 0.0, health_latency: float = 0.0, extra_ports: int = 0
) -> AsyncIterator[FleetProc]:
    args = [
        "-m",
        "bench.fleet",
        f"--provision-delay={provision_delay}",
        f"--health-latency={health_latency}",
        f"--extra-ports={extra_ports}",
    ]
    base = _spawn("fleet", args, {}, log_dir)
    try:
        assert base.popen.stdout is not None
        line = await asyncio.to_thread(base.popen.stdout.readline)
        if not line:
            raise RuntimeError(f"fleet exited before listening:\n{base.tail()}")
        info = json.loads(line)
        proc = FleetProc(base.name, base.popen, base.log_path, f"http://127.0.0.1:{info['port']}")
        proc.ports = tuple(info["ports"])
        await wait_http(proc, "/_stats")
        yield proc
    finally:
        base.stop()
        if base.popen.stdout is not None:
            base.popen.stdout.close()


def serve_here(app: Any) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve an ASGI app (the fake Railway) with uvicorn in this process's event loop."""
    return serve_asgi(app)


def peak_rss_mb(proc: Proc) -> float:
    """VmHWM: the most resident memory the process ever had (Linux)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{proc.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return float("nan")
    return float(times.user + times.system)


def postgres_cpu_seconds() -> float:
    """CPU of every PostgreSQL backend on the machine (the benchmark's cluster is the busy one)."""
    total = 0.0
    for process in psutil.process_iter(["name"]):
        if process.info["name"] == "postgres":
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
    return total


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
