"""One reconcile tick at fleet scale, on the fake Railway, in shared and per-instance mode.

State is written directly: the fake's store (services with a finished deployment, via
`Store.seed`), services' `instance_infra` and the pool's `instances` (idle, clean), all pointing at
the fake fleet, which answers `/pool/health` after `health_latency`. No runtime processes run.
The pool (`python -m pool`, tick loop off) runs ticks on demand (`POST /api/pool/reconcile`);
services (`python -m services`, platform `railway`) talks to the fake, which runs in this process
so its call counter and its own time spent per tick can be read.

A steady-state tick changes nothing, so it measures observation: what the tick chose to observe
(`pool.tick.selection`: with the defaults, at 10,000 idle, the 1,000 least recently observed, the
platform asked about 100 of them), services' health probes of those, `/convos/status` from the
pool of the idle instances due on its rotation (`pool.tick.runtimes`), the plan, and the
set-based stamps. The platform's safety-net listing (`pool.tick.listing`) is measured once per
case, as the one services call the pool makes for it (`changesOnly`), and the hourly Railway
budget is worked out from both: ticks per hour × a steady tick's calls + listings per hour × a
listing's calls, at the default tick interval and listing pacing.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from fastapi import Request
from fastapi.responses import JSONResponse

from bench.claims import API_KEY, AUTH, ENCRYPTION_KEY
from bench.fleet import DEFAULT_SEED, token_for
from bench.procs import (
    app_process,
    cpu_seconds,
    drop_database,
    fleet_process,
    fresh_database,
    load_average,
    peak_rss_mb,
    serve_here,
)
from bench.stats import spread
from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from pool.config import Settings as PoolSettings
from pool.tick.listing import interval as listing_interval
from shared.auth import SecretBox

SERVICES_KEY = "bench-services-key"
RAILWAY_TOKEN = "bench-railway-token"
PAGE_SIZE = 500
BATCH_SIZE = 50


@dataclass
class ReconcileConfig:
    sizes: tuple[int, ...] = (500, 2000, 10000)
    modes: tuple[str, ...] = ("shared", "per-instance")
    ticks: int = 3
    # Fleets this large get one tick (a tick of the old code took minutes at 10,000).
    one_tick_from: int = 1_000_000
    health_latency: float = 0.02
    # Extra env for services and the pool (a variant with other settings).
    services_env: tuple[tuple[str, str], ...] = ()


QUICK = ReconcileConfig(sizes=(200, 1000), ticks=2)


class TimedFakeRailway(FakeRailway):
    """The fake, plus the time it spends answering, so its own cost can be told apart."""

    busy_seconds = 0.0

    async def handle(self, request: Request) -> JSONResponse:
        started = time.perf_counter()
        try:
            return await super().handle(request)
        finally:
            self.busy_seconds += time.perf_counter() - started


def expected_calls(mode: str, size: int) -> int:
    """A steady tick's platform calls: the rotation's first `POOL_OBSERVE_FLOOR_PER_TICK` (100)
    instances, asked in batches of 50 (`serviceInstance` or `environment` aliases), either mode."""
    return math.ceil(min(size, 100) / BATCH_SIZE)


def seed_railway(fake: FakeRailway, mode: str, ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """(project, environment, service) per instance id, written straight into the fake's store."""
    store, refs = fake.store, {}
    if mode == "shared":
        project = store.create_project("fleet", None, RAILWAY_TOKEN, "production")
        environment_id = store.live_environments(project.id)[0].id
        for instance_id in ids:
            service = store.seed(project, environment_id, f"agent-{instance_id}")
            refs[instance_id] = (project.id, environment_id, service.id)
        return refs
    for instance_id in ids:
        project = store.create_project(f"agent-{instance_id}", None, RAILWAY_TOKEN, "production")
        environment_id = store.live_environments(project.id)[0].id
        service = store.seed(project, environment_id, f"agent-{instance_id}")
        refs[instance_id] = (project.id, environment_id, service.id)
    return refs


async def seed_databases(
    pool_url: str, services_url: str, fleet_url: str, mode: str, refs: dict[str, tuple[str, str, str]]
) -> None:
    box = SecretBox(ENCRYPTION_KEY)
    infra, instances = [], []
    for instance_id, (project_id, environment_id, service_id) in refs.items():
        url = f"{fleet_url}/i/{instance_id}"
        # The Railway provider's own record (services keeps it opaque). No "mode": the provider
        # then reads the mode from its settings.
        ref = {"project_id": project_id, "environment_id": environment_id, "service_id": service_id}
        infra.append(
            (
                instance_id,
                f"agent-{instance_id}",
                "railway",
                "railway",
                "active",
                json.dumps(ref),
                url,
                "running",
            )
        )
        token = box.encrypt(token_for(DEFAULT_SEED, instance_id))
        instances.append((instance_id, f"agent-{instance_id}", url, "idle", token, "running"))
    # The one platform of settings without SERVICES_PLATFORMS is named after its provider.
    services_columns = [
        "instance_id",
        "name",
        "platform",
        "provider",
        "state",
        "platform_ref",
        "url",
        "deploy_status",
    ]
    for url, table, records, columns in (
        (services_url, "instance_infra", infra, services_columns),
        (
            pool_url,
            "instances",
            instances,
            ["id", "name", "url", "status", "gateway_token_enc", "deploy_status"],
        ),
    ):
        conn = await asyncpg.connect(url)
        try:
            await conn.copy_records_to_table(table, records=records, columns=columns)
            await conn.execute(f"ANALYZE {table}")
        finally:
            await conn.close()


def _ids(size: int) -> list[str]:
    # 12 characters of [0-9a-z], like shared.ids, but reproducible.
    return [f"b{index:011d}" for index in range(size)]


async def one_case(
    admin_url: str, config: ReconcileConfig, mode: str, size: int, log_dir: Path
) -> dict[str, Any]:
    pool_db = await fresh_database(admin_url, "pool")
    services_db = await fresh_database(admin_url, "services")
    fake = TimedFakeRailway(FakeSettings(tokens={RAILWAY_TOKEN}), DeploySettings(launch_processes=False))
    try:
        refs = seed_railway(fake, mode, _ids(size))
        async with (
            serve_here(fake.app()) as railway_url,
            fleet_process(log_dir, health_latency=config.health_latency) as fleet,
        ):
            await seed_databases(pool_db, services_db, fleet.url, mode, refs)
            project_id, environment_id, _ = next(iter(refs.values()))
            services_env = {
                "SERVICES_DATABASE_URL": services_db,
                "SERVICES_API_KEY": SERVICES_KEY,
                "SERVICES_ENCRYPTION_KEY": "bench-services-encryption",
                "SERVICES_PLATFORM": "railway",
                "SERVICES_SWEEP_INTERVAL_SECONDS": "0",
                "RAILWAY_API_TOKEN": RAILWAY_TOKEN,
                "RAILWAY_API_URL": f"{railway_url}/graphql/v2",
                "RAILWAY_MODE": mode,
                "RAILWAY_PUBLIC_SCHEME": "http",
                **(
                    {"RAILWAY_PROJECT_ID": project_id, "RAILWAY_ENVIRONMENT_ID": environment_id}
                    if mode == "shared"
                    else {}
                ),
                **dict(config.services_env),
            }
            async with app_process(f"services-{mode}-{size}", "services", services_env, log_dir) as services:
                pool_env = {
                    "POOL_DATABASE_URL": pool_db,
                    "POOL_API_KEY": API_KEY,
                    "POOL_ENCRYPTION_KEY": ENCRYPTION_KEY,
                    "POOL_SERVICES_URL": services.url,
                    "POOL_SERVICES_API_KEY": SERVICES_KEY,
                    "POOL_TICK_ENABLED": "false",
                    "POOL_MIN_IDLE": "0",
                    "POOL_MAX_TOTAL": str(size * 2),
                    **dict(config.services_env),
                }
                async with app_process(f"pool-{mode}-{size}", "pool", pool_env, log_dir) as pool:
                    pids = {
                        "pool": pool.popen.pid,
                        "services": services.popen.pid,
                        "fleet": fleet.popen.pid,
                        "fake_railway": os.getpid(),
                    }
                    count = 1 if size >= config.one_tick_from else config.ticks
                    ticks = [await _tick(pool.url, pool_db, fake, pids) for _ in range(count)]
                    listed = await _listing(services.url, fake)
                    rss = {
                        "pool_rss_mb": round(pool.rss_mb(), 1),
                        "pool_peak_rss_mb": round(peak_rss_mb(pool), 1),
                        "services_rss_mb": round(services.rss_mb(), 1),
                        "services_peak_rss_mb": round(peak_rss_mb(services), 1),
                    }
    finally:
        await fake.aclose()
        await drop_database(admin_url, pool_db)
        await drop_database(admin_url, services_db)
    return {
        "mode": mode,
        "size": size,
        "tick_s": spread([t["tick_s"] for t in ticks]),
        "request_s": spread([t["request_s"] for t in ticks]),
        "fake_railway_s": spread([t["fake_railway_s"] for t in ticks]),
        "railway_calls": spread([t["railway_calls"] for t in ticks]),
        "expected_calls": expected_calls(mode, size),
        "budget_calls": math.ceil(size / PAGE_SIZE) if mode == "shared" else size // 40,
        "cpu_s_per_tick": {
            name: round(statistics.median(t["cpu_s"][name] for t in ticks), 2) for name in ticks[0]["cpu_s"]
        },
        "actions": [t["actions"] for t in ticks],
        "listing": listed,
        "calls_per_hour": _calls_per_hour(statistics.median(t["railway_calls"] for t in ticks), listed),
        "errors": [t["error"] for t in ticks if t["error"]],
        **rss,
    }


async def _tick(pool_url: str, pool_db: str, fake: TimedFakeRailway, pids: dict[str, int]) -> dict[str, Any]:
    calls, busy = sum(fake.calls.values()), fake.busy_seconds
    cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=pool_url, headers=AUTH, timeout=600) as http:
        response = await http.post("/api/pool/reconcile")
    request_s = time.perf_counter() - started
    cpu = {name: round(cpu_seconds(pid) - cpu_before[name], 2) for name, pid in pids.items()}
    response.raise_for_status()
    summary = response.json()
    conn = await asyncpg.connect(pool_db)
    try:
        duration_ms = await conn.fetchval("SELECT last_tick_duration_ms FROM tick_state LIMIT 1")
    finally:
        await conn.close()
    return {
        "tick_s": round((duration_ms or 0) / 1000, 3),
        "request_s": round(request_s, 3),
        "fake_railway_s": round(fake.busy_seconds - busy, 3),
        "railway_calls": sum(fake.calls.values()) - calls,
        "cpu_s": cpu,
        "actions": _actions(summary),
        "error": _error(summary),
    }


async def _listing(services_url: str, fake: TimedFakeRailway) -> dict[str, Any]:
    """The safety net's full listing, as the pool asks for it (`pool.tick.listing`)."""
    calls = sum(fake.calls.values())
    started = time.perf_counter()
    async with httpx.AsyncClient(
        base_url=services_url, headers={"Authorization": f"Bearer {SERVICES_KEY}"}, timeout=600
    ) as http:
        response = await http.post("/status/batch", json={"changesOnly": True, "probe": False})
    response.raise_for_status()
    body = response.json()
    return {
        "seconds": round(time.perf_counter() - started, 3),
        "railway_calls": sum(fake.calls.values()) - calls,
        "reported": len(body["instances"]),
        "fleet": len(body.get("fleet") or []),
        "bytes": len(response.content),
    }


def _calls_per_hour(tick_calls: float, listed: dict[str, Any]) -> dict[str, float]:
    """Steady-state Railway calls per hour at the pool's defaults (30 s ticks; listings every
    `listing.interval` of what one costs, 300 s and 2,500 calls/hour)."""
    defaults = PoolSettings.model_fields
    tick_interval = float(defaults["tick_interval_seconds"].default)
    every = listing_interval(
        listed["railway_calls"],
        every=float(defaults["listing_interval_seconds"].default),
        calls_per_hour=int(defaults["listing_calls_per_hour"].default),
    )
    ticks = tick_calls * 3600 / tick_interval
    listings = listed["railway_calls"] * 3600 / every
    return {
        "ticks": round(ticks),
        "listings": round(listings),
        "total": round(ticks + listings),
        "listing_every_s": round(every, 1),
    }


def _result(answer: Any) -> dict[str, Any]:
    """The tick summary inside `{"ran": true, "result": {...}}`."""
    result = answer.get("result") if isinstance(answer, dict) else None
    return result if isinstance(result, dict) else {}


def _actions(answer: Any) -> dict[str, Any]:
    actions = _result(answer).get("actions")
    return actions if isinstance(actions, dict) else {}


def _error(answer: Any) -> str | None:
    error = _result(answer).get("error")
    return str(error) if error else None


async def run(admin_url: str, config: ReconcileConfig, log_dir: Path) -> dict[str, Any]:
    rows = [
        await one_case(admin_url, config, mode, size, log_dir)
        for mode in config.modes
        for size in config.sizes
    ]
    return {
        "load_average": load_average(),
        "ticks": config.ticks,
        "health_latency_ms": round(config.health_latency * 1000),
        "env": dict(config.services_env),
        "rows": rows,
    }
