"""Promotion latency (deploy SUCCESS → pool `idle`) with deploy events on and off.

Everything runs in this process but the runtimes: the fake Railway on the `realistic` profile
(its API latencies, 5xx, lost answers, 429 bursts and its deploy events: median 1 s / p99 10 s,
2 % lost), services with the Railway provider in shared mode, and the pool with its default
pacing (tick every 30 s, starting prober every 2 s). Two changes to the profile keep a run to
about a minute and make SUCCESS mean what it means behind Railway's healthcheck: deploys take
`deploy_s` (not 60-180 s), and each runtime is told to boot for the deploy's DEPLOYING phase, so
it answers ready when SUCCESS is reported (plus its own start-up). Variants alternate (off, on,
off, on, ...), each from empty databases; each instance's latency is from the fake's SUCCESS to
the first time the pool's row reads `idle` (polled every 50 ms).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bench.procs import drop_database, fresh_database, load_average
from devtools.faults import Faults
from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from devtools.railway_fake.deploys import DeployEngine, free_port
from devtools.railway_fake.store import Deployment
from devtools.serve import serve_asgi

SECRET = "bench_events_" + "s" * 20
SERVICES_KEY = "bench-events-services-key"


@dataclass
class EventsConfig:
    instances: int = 6
    rounds: int = 3
    deploy_s: tuple[float, float] = (10.0, 20.0)
    seed: int = 1


QUICK = EventsConfig(instances=3, rounds=1)


class ReadyAtSuccess(DeployEngine):
    """Boots each runtime for its DEPLOYING phase: ready when SUCCESS is reported."""

    def _durations(self) -> tuple[float, float, float, float]:
        queued, building, deploying, _boot = super()._durations()
        return queued, building, deploying, deploying


async def variant(admin_url: str, config: EventsConfig, events: bool, round_no: int) -> dict[str, Any]:
    # Imported here: the apps' modules are heavy and only this benchmark needs them in-process.
    from pool.config import Settings as PoolSettings
    from pool.main import create_app as create_pool_app
    from services.config import Settings as ServicesSettings
    from services.main import create_app as create_services_app

    pool_db = await fresh_database(admin_url, "pool")
    services_db = await fresh_database(admin_url, "services")
    faults = Faults.named("realistic", seed=config.seed + round_no, salt="railway")
    faults.with_profile(deploy_seconds=config.deploy_s)
    tokens = [f"bench-events-token-{n}" for n in range(config.instances)]
    fake = FakeRailway(FakeSettings(tokens=set(tokens), faults=faults), DeploySettings(faults=faults))
    fake.deploys = ReadyAtSuccess(fake.store, fake.deploys.settings, fake.data_root)
    success_at: dict[str, float] = {}
    # When each SUCCESS event reaches services (SUCCESS + the fake's delivery delay), so the
    # latency splits into the platform's part (the delay) and ours (delivery → idle).
    delivered_at: dict[str, float] = {}
    deliver = fake.notifications.deployment_moved
    sample_delay = faults.event_delay
    sampled: list[float | None] = []

    def recorded_delay() -> float | None:
        sampled.append(sample_delay())
        return sampled[-1]

    faults.event_delay = recorded_delay  # type: ignore[method-assign]

    def moved(deployment: Deployment) -> None:
        instance_id = deployment.variables.get("INSTANCE_ID", "")
        sampled.clear()
        deliver(deployment)
        if deployment.status == "SUCCESS" and instance_id not in success_at:
            success_at[instance_id] = time.monotonic()
            if events and sampled and sampled[0] is not None:
                delivered_at[instance_id] = success_at[instance_id] + sampled[0]

    fake.store.on_deployment_move = moved
    project = fake.store.create_project("fleet", "ws-bench", tokens[0], "production")
    services_port, pool_port = free_port(), free_port()
    env = {
        "RAILWAY_API_TOKENS": ",".join(tokens),
        "RAILWAY_MODE": "shared",
        "RAILWAY_PROJECT_ID": project.id,
        "RAILWAY_PUBLIC_SCHEME": "http",
        "RAILWAY_WEBHOOK_SECRET": SECRET if events else "",
    }
    idle_at: dict[str, float] = {}
    saved = {key: os_environ_get(key) for key in [*env, "RAILWAY_API_URL"]}
    try:
        async with serve_asgi(fake.app()) as railway_url:
            os_environ_update({**env, "RAILWAY_API_URL": f"{railway_url}/graphql/v2"})
            services = ServicesSettings(
                environment="test",
                database_url=services_db,
                api_key=SERVICES_KEY,
                encryption_key="bench-events-encryption",
                platform="railway",
                sweep_interval_seconds=0,
                port=services_port,
                pool_url=f"http://127.0.0.1:{pool_port}",
                log_level="WARNING",
            )
            pool = PoolSettings(
                environment="test",
                database_url=pool_db,
                api_key="bench-events-pool-key",
                services_url=f"http://127.0.0.1:{services_port}",
                services_api_key=SERVICES_KEY,
                encryption_key="bench-events-pool-encryption",
                min_idle=config.instances,
                max_total=config.instances,
                create_concurrency=config.instances,
            )
            async with (
                serve_asgi(create_services_app(services), port=services_port),
                serve_asgi(create_pool_app(pool), port=pool_port),
            ):
                idle_at = await _watch(pool_db, config)
    finally:
        os_environ_update(saved)
        await fake.aclose()
        await drop_database(admin_url, pool_db)
        await drop_database(admin_url, services_db)
    latencies = sorted(round(idle_at[i] - success_at[i], 3) for i in idle_at if i in success_at)
    # Only instances whose event arrived before they were idle: the rest were promoted by the tick.
    after_delivery = sorted(
        round(idle_at[i] - delivered_at[i], 3)
        for i in idle_at
        if i in delivered_at and idle_at[i] >= delivered_at[i]
    )
    return {
        "events": events,
        "round": round_no,
        "latencies_s": latencies,
        "after_delivery_s": after_delivery,
        "events_delivered": dict(fake.notifications.outcomes),
        "faults": dict(faults.injected),
    }


def os_environ_get(key: str) -> str | None:
    import os

    return os.environ.get(key)


def os_environ_update(values: dict[str, str | None]) -> None:
    import os

    for key, value in values.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


async def _watch(pool_db: str, config: EventsConfig) -> dict[str, float]:
    """When each instance was first seen idle (until all are, or a deadline)."""
    deadline = time.monotonic() + 60 + 4 * config.deploy_s[1]
    seen: dict[str, float] = {}
    conn = await asyncpg.connect(pool_db)
    try:
        while time.monotonic() < deadline and len(seen) < config.instances:
            for row in await conn.fetch("SELECT id FROM instances WHERE status = 'idle'"):
                seen.setdefault(row["id"], time.monotonic())
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    return seen


def summary(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"n": 0}
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "p50_s": round(statistics.median(ordered), 2),
        "p90_s": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 2),
        "max_s": round(ordered[-1], 2),
    }


async def run(admin_url: str, config: EventsConfig, log_dir: Path) -> dict[str, Any]:
    load_before = load_average()
    rows = []
    for round_no in range(config.rounds):
        for events in (False, True):
            rows.append(await variant(admin_url, config, events, round_no))
            print(
                f"bench events: round {round_no} events={'on' if events else 'off'} {rows[-1]['latencies_s']}"
            )
    on = [x for row in rows if row["events"] for x in row["latencies_s"]]
    after_delivery = [x for row in rows if row["events"] for x in row["after_delivery_s"]]
    off = [x for row in rows if not row["events"] for x in row["latencies_s"]]
    return {
        "instances": config.instances,
        "rounds": config.rounds,
        "deploy_s": list(config.deploy_s),
        "load_average": {"before": load_before, "after": load_average()},
        "on": summary(on),
        "off": summary(off),
        "after_delivery": summary(after_delivery),
        "rows": rows,
    }
