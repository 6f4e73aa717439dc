"""Warm-up: from an empty fleet to `target` idle instances on the fake Railway, per-instance mode.

Railway's timings are scaled by `scale` (default 1/10) so the run takes seconds, not minutes:
each API call takes `create_call_s`, a deploy takes `deploy_s` from the config commit until the
instance answers, and each token may create one project (and one volume) per
`project_interval_s`. Every interval of the pool and services that paces the warm-up (tick,
starting prober, the client's cooldowns and rate limit) is scaled by the same factor.

No runtime processes: when a deployment reaches DEPLOYING, the fake registers the instance (its
id, gateway token and domain port) with the fake fleet, which listens on those ports and answers
ready once the deploy has finished.

Two variants, each from scratch: the pool's own refill (tick + bounded concurrent creates), and
"one at a time" (create one through `POST /api/pool/replenish`, wait until it is idle, repeat).
"""

from __future__ import annotations

import asyncio
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import asyncpg
import httpx

from bench.claims import API_KEY, AUTH, ENCRYPTION_KEY
from bench.procs import app_process, drop_database, fleet_process, fresh_database, load_average, serve_here
from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from devtools.railway_fake import resolvers as fake_resolvers
from devtools.railway_fake.deploys import DeployEngine
from devtools.railway_fake.store import Deployment

SERVICES_KEY = "bench-services-key"
# Calls of one create in per-instance mode: ProjectCreate, ServiceCreate, VolumeCreate,
# ServiceDomainCreate, EnvironmentPatchCommit (services/platforms/railway/provider.py).
CALLS_PER_CREATE = 5
# The fake's resolvers pick a domain's loopback port with this function; the benchmark hands out
# the fleet's ports instead.
PORT_PICKER = "free_port"


@dataclass
class WarmupConfig:
    target: int = 50
    scale: float = 0.1
    tokens: int = 5
    create_call_s: float = 0.3
    deploy_s: float = 20.0
    project_interval_s: float = 30.0
    tick_interval_s: float = 30.0
    probe_interval_s: float = 2.0
    create_concurrency: int = 4
    one_at_a_time: bool = True

    def scaled(self, seconds: float) -> float:
        return seconds * self.scale

    def limit_s(self) -> float:
        """The floor set by the platform: the last token slot, one create's calls, one deploy."""
        rounds = math.ceil(self.target / self.tokens)
        interval = self.scaled(self.project_interval_s)
        return (rounds - 1) * interval + self.scaled(CALLS_PER_CREATE * self.create_call_s + self.deploy_s)

    def serial_limit_s(self) -> float:
        """The floor for one at a time: each create's calls and deploy, back to back."""
        return self.target * self.scaled(CALLS_PER_CREATE * self.create_call_s + self.deploy_s)


QUICK = WarmupConfig(target=10, scale=0.05)


class _Resident:
    """Stands in for the runtime process the fake would start: alive until stopped."""

    def __init__(self) -> None:
        self.returncode: int | None = None
        self._stopped = asyncio.Event()

    async def wait(self) -> int:
        await self._stopped.wait()
        return self.returncode or 0

    def send_signal(self, sig: int) -> None:
        self.returncode = -sig
        self._stopped.set()

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class FleetDeployEngine(DeployEngine):
    """Registers each deployment with the fake fleet instead of starting a process."""

    fleet_url = ""
    http: httpx.AsyncClient | None = None

    async def _launch(self, deployment: Deployment, boot: float = 0.0) -> asyncio.subprocess.Process:
        domain = self.store.service_domain(deployment.service_id, deployment.environment_id)
        assert domain is not None and self.http is not None
        variables = deployment.variables
        await self.http.post(
            f"{self.fleet_url}/_register",
            json={
                "port": domain.port,
                "instanceId": variables["INSTANCE_ID"],
                "token": variables["GATEWAY_TOKEN"],
                "readyIn": self.settings.deploying_seconds,
            },
        )
        resident = _Resident()
        self.processes[(deployment.service_id, deployment.environment_id)] = cast(
            asyncio.subprocess.Process, resident
        )
        return cast(asyncio.subprocess.Process, resident)


class FirstCallFake(FakeRailway):
    first_call_at: float | None = None

    async def handle(self, request: Any) -> Any:
        if self.first_call_at is None:
            self.first_call_at = time.perf_counter()
        return await super().handle(request)


def _fake(config: WarmupConfig, tokens: list[str]) -> FirstCallFake:
    deploy = config.scaled(config.deploy_s)
    interval = config.scaled(config.project_interval_s)
    fake = FirstCallFake(
        FakeSettings(
            tokens=set(tokens),
            project_create_interval=interval,
            volume_create_interval=interval,
            latency_seconds=config.scaled(config.create_call_s),
        ),
        # Ready (and SUCCESS) exactly `deploy` after the commit.
        DeploySettings(
            queued_seconds=0.1 * deploy, building_seconds=0.65 * deploy, deploying_seconds=0.25 * deploy
        ),
    )
    fake.deploys = FleetDeployEngine(fake.store, fake.deploys.settings, fake.data_root)
    return fake


async def _idle_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM instances WHERE status = 'idle'"))


async def variant(admin_url: str, config: WarmupConfig, one_at_a_time: bool, log_dir: Path) -> dict[str, Any]:
    pool_db = await fresh_database(admin_url, "pool")
    services_db = await fresh_database(admin_url, "services")
    tokens = [f"bench-railway-token-{n}" for n in range(config.tokens)]
    fake = _fake(config, tokens)
    original_free_port = getattr(fake_resolvers, PORT_PICKER)
    try:
        async with (
            fleet_process(log_dir, extra_ports=config.target + 5) as fleet,
            httpx.AsyncClient(timeout=30) as http,
            serve_here(fake.app()) as railway_url,
        ):
            engine = cast(FleetDeployEngine, fake.deploys)
            engine.fleet_url, engine.http = fleet.url, http
            ports = list(fleet.ports)
            # Each new domain gets a port the fleet listens on (the fake would pick any free port).
            setattr(fake_resolvers, PORT_PICKER, ports.pop)
            services_env = {
                "SERVICES_DATABASE_URL": services_db,
                "SERVICES_API_KEY": SERVICES_KEY,
                "SERVICES_ENCRYPTION_KEY": "bench-services-encryption",
                "SERVICES_PLATFORM": "railway",
                "SERVICES_SWEEP_INTERVAL_SECONDS": "0",
                "RAILWAY_API_TOKENS": ",".join(tokens),
                "RAILWAY_API_URL": f"{railway_url}/graphql/v2",
                "RAILWAY_MODE": "per-instance",
                "RAILWAY_PUBLIC_SCHEME": "http",
                "RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS": str(config.scaled(config.project_interval_s)),
                "RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS": str(config.scaled(config.project_interval_s)),
                "RAILWAY_REQUESTS_PER_SECOND": str(10 / config.scale),
                "RAILWAY_REQUESTS_PER_HOUR": str(int(9000 / config.scale)),
            }
            async with app_process("services-warmup", "services", services_env, log_dir) as services:
                pool_env = {
                    "POOL_DATABASE_URL": pool_db,
                    "POOL_API_KEY": API_KEY,
                    "POOL_ENCRYPTION_KEY": ENCRYPTION_KEY,
                    "POOL_SERVICES_URL": services.url,
                    "POOL_SERVICES_API_KEY": SERVICES_KEY,
                    "POOL_MIN_IDLE": "0" if one_at_a_time else str(config.target),
                    "POOL_MAX_TOTAL": str(config.target),
                    "POOL_CREATE_CONCURRENCY": str(config.create_concurrency),
                    "POOL_TICK_INTERVAL_SECONDS": str(config.scaled(config.tick_interval_s)),
                    "POOL_STARTING_PROBE_INTERVAL_SECONDS": str(config.scaled(config.probe_interval_s)),
                }
                conn = await asyncpg.connect(pool_db)
                try:
                    async with app_process("pool-warmup", "pool", pool_env, log_dir) as pool:
                        if one_at_a_time:
                            timeline = await _one_at_a_time(pool.url, conn, config)
                        else:
                            timeline = await _watch(conn, fake, config)
                finally:
                    await conn.close()
    finally:
        setattr(fake_resolvers, PORT_PICKER, original_free_port)
        await fake.aclose()
        await drop_database(admin_url, pool_db)
        await drop_database(admin_url, services_db)
    reached = timeline[-1][1] >= config.target
    return {
        "variant": "one_at_a_time" if one_at_a_time else "pool_refill",
        "wall_s": round(timeline[-1][0], 2) if reached else None,
        "reached": reached,
        "timeline": timeline,
        "railway_calls": dict(fake.calls),
        "rejected": dict(fake.rejected),
    }


async def _watch(
    conn: asyncpg.Connection, fake: FirstCallFake, config: WarmupConfig
) -> list[tuple[float, int]]:
    """Idle count over time, from the first Railway call the pool's first tick causes."""
    deadline = time.perf_counter() + 6 * config.limit_s() + 60
    while fake.first_call_at is None and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)
    start = fake.first_call_at or time.perf_counter()
    timeline: list[tuple[float, int]] = []
    while time.perf_counter() < deadline:
        idle = await _idle_count(conn)
        timeline.append((round(time.perf_counter() - start, 3), idle))
        if idle >= config.target:
            break
        await asyncio.sleep(0.05)
    return timeline


async def _one_at_a_time(
    pool_url: str, conn: asyncpg.Connection, config: WarmupConfig
) -> list[tuple[float, int]]:
    deadline = time.perf_counter() + 6 * config.serial_limit_s() + 60
    start = time.perf_counter()
    timeline: list[tuple[float, int]] = [(0.0, 0)]
    async with httpx.AsyncClient(base_url=pool_url, headers=AUTH, timeout=120) as http:
        for made in range(1, config.target + 1):
            (await http.post("/api/pool/replenish", json={"count": 1})).raise_for_status()
            while (idle := await _idle_count(conn)) < made and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
            timeline.append((round(time.perf_counter() - start, 3), idle))
            if idle < made:
                break
    return timeline


async def run(admin_url: str, config: WarmupConfig, log_dir: Path) -> dict[str, Any]:
    load_before = load_average()
    rows = [await variant(admin_url, config, False, log_dir)]
    if config.one_at_a_time:
        rows.append(await variant(admin_url, config, True, log_dir))
    return {
        "target": config.target,
        "scale": config.scale,
        "tokens": config.tokens,
        "create_concurrency": config.create_concurrency,
        "real": {
            "create_call_s": config.create_call_s,
            "deploy_s": config.deploy_s,
            "project_interval_s": config.project_interval_s,
        },
        "limit_s": round(config.limit_s(), 2),
        "serial_limit_s": round(config.serial_limit_s(), 2),
        "load_average": {"before": load_before, "after": load_average()},
        "rows": rows,
    }
