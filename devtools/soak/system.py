"""The whole system as real processes for the chaos soak: embedded PostgreSQL (devtools/pg.py), both
databases migrated, `python -m services` and `python -m pool` as children in their own sessions (so a
SIGKILL takes them as an OOM kill would, and a restart comes back on the same port), the fake Railway
(its runtimes are real `python -m runtime` processes) and the vendor fakes served over HTTP from this
process, all on one seeded realistic profile scaled in time.

The fakes live in the harness's process on purpose: the soak reads their inventories and turns their
faults on and off directly, and they are not what is being killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import asyncpg
import httpx

from devtools.faults import Faults
from devtools.pg import EmbeddedPostgres
from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from devtools.railway_fake.deploys import free_port
from devtools.serve import serve_asgi
from devtools.vendor_fakes.server import VendorServer, service_env
from shared.migrations import upgrade_async

Mode = Literal["shared", "per-instance"]
ROOT = Path(__file__).resolve().parents[2]
TOKEN = "soak-railway-token"
POOL_KEY = "pool_sk_soak_operator_key_0123456789"
SERVICES_KEY = "services_sk_soak_key_0123456789"
TOOLS = ["openrouter", "agentmail", "telnyx"]
# Encrypts the gateway tokens in the pool database; the soak reads them back to act as the agents.
POOL_ENCRYPTION_KEY = "soak-pool-encryption-key"


@dataclass
class SoakConfig:
    mode: Mode = "shared"
    seed: int = 1
    # 0.02: a minute of production in 1.2 s (deploys of 60-180 s take 1.2-3.6 s).
    time_scale: float = 0.02
    min_idle: int = 3
    max_total: int = 8
    # The clients' timeouts, and how long a "lost" answer is held (just past them).
    client_timeout: float = 3.0
    # Two templates beside `default`, part of the claims naming them, rollouts and an archive
    # during the run (devtools/soak/templates.py).
    templates: bool = False
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class App:
    name: str
    module: str
    port: int
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module], cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL of the whole session: no shutdown hook runs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.url + "/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise TimeoutError(f"{self.name} not healthy after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class System:
    config: SoakConfig
    workdir: Path
    railway: FakeRailway
    vendors: VendorServer
    pool_db: str
    services_db: str
    services: App
    pool: App
    project_id: str | None

    async def restart(self, app: App, down_seconds: float) -> None:
        app.kill()
        await asyncio.sleep(down_seconds)
        app.start()
        await app.ready()

    async def terminate_connections(self) -> int:
        """pg_terminate_backend on every connection of both apps (not our own)."""
        conn = await asyncpg.connect(self.pool_db)
        try:
            names = [self.pool_db.rsplit("/", 1)[1], self.services_db.rsplit("/", 1)[1]]
            rows = await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = ANY($1::text[]) AND pid <> pg_backend_pid()",
                names,
            )
            return len(rows)
        finally:
            await conn.close()

    def operator(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.pool.url, headers={"Authorization": f"Bearer {POOL_KEY}"}, timeout=60.0
        )


def serve(app: Any) -> contextlib.AbstractAsyncContextManager[str]:
    """Serve a fake here; a held ("lost") answer does not keep the shutdown waiting."""
    return serve_asgi(app, timeout_graceful_shutdown=1)


def _faults(config: SoakConfig, salt: str) -> Faults:
    faults = Faults.named("realistic", time_scale=config.time_scale, seed=config.seed, salt=salt)
    return faults.with_profile(hang_seconds=config.client_timeout + 2)


async def _database(admin_url: str, name: str, app: str) -> str:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = admin_url.rsplit("/", 1)[0] + "/" + name
    await upgrade_async(app, url)
    return url


def _base_env() -> dict[str, str]:
    keep = ("POOL_", "SERVICES_", "RAILWAY_", "OPENROUTER_", "AGENTMAIL_", "TELNYX_", "BANKR_", "POOLED_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(keep)}
    return {**env, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


def app_envs(
    config: SoakConfig, *, railway_url: str, vendors_url: str, vendors: VendorServer, project_id: str | None,
    pool_port: int, services_port: int, pool_db: str, services_db: str, data_dir: Path,
) -> tuple[dict[str, str], dict[str, str]]:  # fmt: skip
    timeout = str(config.client_timeout)
    services = {
        **_base_env(),
        **service_env(vendors_url, vendors.vendors),
        "SERVICES_ENVIRONMENT": "test",
        "SERVICES_DATABASE_URL": services_db,
        "SERVICES_PORT": str(services_port),
        "SERVICES_API_KEY": SERVICES_KEY,
        "SERVICES_ENCRYPTION_KEY": "soak-services-encryption-key",
        "SERVICES_POOL_URL": f"http://127.0.0.1:{pool_port}",
        "SERVICES_PLATFORM": "railway",
        "SERVICES_LOCAL_DATA_DIR": str(data_dir / "local"),
        "SERVICES_SWEEP_INTERVAL_SECONDS": "0",
        "SERVICES_SWEEP_GRACE_SECONDS": "2",
        "SERVICES_PROBE_TIMEOUT_SECONDS": "1",
        "RAILWAY_API_TOKEN": TOKEN,
        "RAILWAY_API_URL": f"{railway_url}/graphql/v2",
        "RAILWAY_MODE": config.mode,
        "RAILWAY_PROJECT_ID": project_id or "",
        "RAILWAY_PUBLIC_SCHEME": "http",
        "RAILWAY_TIMEOUT_SECONDS": timeout,
        "RAILWAY_REQUESTS_PER_SECOND": "50",
        "RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS": str(30 * config.time_scale),
        "RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS": str(30 * config.time_scale),
        "RAILWAY_BACKOFF_SECONDS": "0.05",
        # Placement's pause of a failing platform, on the run's time scale like the rest (unscaled, a
        # storm of HTTP-200 errors late in a run stops every create for up to 10 minutes).
        "SERVICES_PLACEMENT_BACKOFF_SECONDS": str(30 * config.time_scale),
        "SERVICES_PLACEMENT_BACKOFF_MAX_SECONDS": str(600 * config.time_scale),
        "RAILWAY_MAX_RETRY_AFTER_SECONDS": "1",
        # A create whose worker died (services SIGKILLed, every ~20 s here) waits out its lease before
        # another worker takes it again. Unscaled (60 s), two kills during one create kept it
        # `creating` for 120 s, the soak's `stuck` bound; the lease is renewed in the background
        # every third of it, so a shorter one costs a live create nothing.
        "SERVICES_CREATE_LEASE_SECONDS": "20",
        "OPENROUTER_TIMEOUT_SECONDS": timeout,
        "AGENTMAIL_TIMEOUT_SECONDS": timeout,
        "TELNYX_TIMEOUT_SECONDS": timeout,
        "TELNYX_ORDER_POLL_SECONDS": "0.05",
        "TELNYX_NOT_FOUND_BACKOFF_SECONDS": "0.05",
        "POOLED_TOOLS": "[]",
        **config.env,
    }
    pool = {
        **_base_env(),
        "POOL_ENVIRONMENT": "test",
        "POOL_DATABASE_URL": pool_db,
        "POOL_PORT": str(pool_port),
        "POOL_API_KEY": POOL_KEY,
        "POOL_ADMIN_PASSWORD": "soak-admin-password",
        "POOL_SERVICES_URL": f"http://127.0.0.1:{services_port}",
        "POOL_SERVICES_API_KEY": SERVICES_KEY,
        "POOL_ENCRYPTION_KEY": POOL_ENCRYPTION_KEY,
        "POOL_MIN_IDLE": str(config.min_idle),
        "POOL_MAX_TOTAL": str(config.max_total),
        "POOL_TOOLS": json.dumps(TOOLS),
        "POOL_TICK_INTERVAL_SECONDS": "1",
        "POOL_STARTING_PROBE_INTERVAL_SECONDS": "0.5",
        "POOL_ORPHAN_GRACE_SECONDS": "5",
        "POOL_SERVICES_TIMEOUT_SECONDS": "20",
        "POOL_CLAIM_PROVISION_TIMEOUT_SECONDS": timeout,
        "POOL_PROBE_TIMEOUT_SECONDS": "1",
        "POOL_STUCK_TIMEOUT_SECONDS": "60",
        "POOL_CREATE_BACKOFF_BASE_SECONDS": "0.5",
        "POOL_CREATE_BACKOFF_MAX_SECONDS": "3",
        **config.env,
    }
    return services, pool


@contextlib.asynccontextmanager
async def running_system(config: SoakConfig, postgres_admin_url: str | None = None) -> AsyncIterator[System]:
    workdir = Path(tempfile.mkdtemp(prefix=f"soak-{config.mode}-{config.seed}-"))
    (workdir / "logs").mkdir()
    async with contextlib.AsyncExitStack() as stack:
        # Kept while anything runs (the logs explain a failure), removed once all has stopped
        # unless SOAK_KEEP_WORKDIR asks to read the apps' logs after the run.
        if not os.environ.get("SOAK_KEEP_WORKDIR"):
            stack.callback(shutil.rmtree, workdir, True)
        if postgres_admin_url is None:
            pg = EmbeddedPostgres(workdir / "pg").start()
            stack.callback(pg.stop)
            postgres_admin_url = pg.url("postgres")
        suffix = f"{config.mode.replace('-', '_')}_{config.seed}_{os.getpid()}_{time.monotonic_ns() % 10**6}"
        pool_db = await _database(postgres_admin_url, f"soak_pool_{suffix}", "pool")
        services_db = await _database(postgres_admin_url, f"soak_services_{suffix}", "services")
        railway_faults = _faults(config, "railway")
        railway = FakeRailway(
            FakeSettings(tokens={TOKEN}, faults=railway_faults),
            DeploySettings(faults=railway_faults),
            data_root=workdir / "railway",
        )
        vendors = VendorServer(faults={name: _faults(config, name) for name in TOOLS})
        railway_url = await stack.enter_async_context(serve(railway.app()))
        vendors_url = await stack.enter_async_context(serve(vendors.app()))
        stack.push_async_callback(railway.aclose)
        project_id = None
        if config.mode == "shared":
            project_id = railway.store.create_project("fleet", None, TOKEN, "production").id
        pool_port, services_port = free_port(), free_port()
        services_env, pool_env = app_envs(
            config, railway_url=railway_url, vendors_url=vendors_url, vendors=vendors, project_id=project_id,
            pool_port=pool_port, services_port=services_port, pool_db=pool_db, services_db=services_db,
            data_dir=workdir,
        )  # fmt: skip
        services = App("services", "services", services_port, services_env, workdir / "logs/services.log")
        pool = App("pool", "pool", pool_port, pool_env, workdir / "logs/pool.log")
        stack.callback(services.stop)
        stack.callback(pool.stop)
        services.start()
        await services.ready()
        pool.start()
        await pool.ready()
        yield System(config, workdir, railway, vendors, pool_db, services_db, services, pool, project_id)
