"""Claim latency, throughput and the pool's own overhead against a fleet of idle instances.

Processes: PostgreSQL, the pool (`python -m pool`, uvicorn, tick off so nothing but claims runs),
the fake fleet (`python -m bench.fleet`) and this process as the load generator. Each run starts
from the same state: every instance idle and clean, the claims table empty.

Overhead of one claim = its latency seen by the client minus the time the fleet spent inside
`/pool/provision` for that instance (measured by the fleet, reported at `/_stats`), so it holds
the pool's HTTP handling, its two transactions, token decryption and its call to the instance.

Every case also runs against the floor (`bench/floor.py`: one statement and one instance call on
the pool's server stack, nothing else), alternating run by run with the pool, so each row reads
against what the machine itself costs for the same claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from bench.fleet import DEFAULT_SEED, token_for
from bench.loadgen import Connection
from bench.procs import (
    app_process,
    cpu_seconds,
    drop_database,
    fleet_process,
    fresh_database,
    load_average,
    postgres_cpu_seconds,
)
from bench.stats import spread, summary
from shared.auth import SecretBox
from shared.ids import new_instance_id

API_KEY = "bench-pool-key"
ENCRYPTION_KEY = "bench-encryption-key"
AUTH = {"Authorization": f"Bearer {API_KEY}"}

RESET_SQL = """
DELETE FROM claims;
UPDATE instances
   SET status = 'idle', agent_name = NULL, instructions = NULL, join_url = NULL, profile_image = NULL,
       metadata = NULL, owner_id = NULL, conversation_id = NULL, invite_url = NULL,
       claimed_at = NULL, last_error = NULL, status_changed_at = now();
"""

DOUBLES_SQL = """
SELECT (SELECT count(*) FROM (SELECT instance_id FROM claims WHERE status = 'succeeded'
                              GROUP BY instance_id HAVING count(*) > 1) d) AS shared_rows,
       (SELECT count(*) FROM instances WHERE status = 'claimed') AS claimed,
       (SELECT count(*) FROM instances WHERE status = 'claiming') AS claiming
"""


@dataclass
class ClaimsConfig:
    idle: int = 1000
    concurrencies: tuple[int, ...] = (1, 10, 50, 100)
    delays_ms: tuple[int, ...] = (0, 200)
    runs: int = 2
    # Claims per run by (delay_ms, concurrency); a run never needs more than `idle`.
    claims: dict[tuple[int, int], int] = field(
        default_factory=lambda: {
            (0, 1): 200,
            (0, 10): 500,
            (0, 50): 500,
            (0, 100): 500,
            (200, 1): 30,
            (200, 10): 200,
            (200, 50): 500,
            (200, 100): 500,
        }
    )
    warmup_claims: int = 50

    def count(self, delay_ms: int, concurrency: int) -> int:
        return min(self.idle, self.claims.get((delay_ms, concurrency), 10 * concurrency))


QUICK = ClaimsConfig(
    idle=300,
    runs=1,
    claims={
        (0, 1): 50,
        (0, 10): 150,
        (0, 50): 250,
        (0, 100): 300,
        (200, 1): 10,
        (200, 10): 50,
        (200, 50): 250,
        (200, 100): 300,
    },
    warmup_claims=20,
)


@dataclass
class Sample:
    latency_ms: float
    status: int
    instance_id: str | None


async def seed(pool_url: str, fleet_url: str, count: int) -> None:
    box = SecretBox(ENCRYPTION_KEY)
    records = []
    for _ in range(count):
        instance_id = new_instance_id()
        token = box.encrypt(token_for(DEFAULT_SEED, instance_id))
        url = f"{fleet_url}/i/{instance_id}"
        records.append((instance_id, f"agent-{instance_id}", url, "idle", token, "running"))
    conn = await asyncpg.connect(pool_url)
    try:
        await conn.copy_records_to_table(
            "instances",
            records=records,
            columns=["id", "name", "url", "status", "gateway_token_enc", "deploy_status"],
        )
    finally:
        await conn.close()


async def reset(pool_url: str, http: httpx.AsyncClient, fleet_url: str, delay_ms: int) -> None:
    conn = await asyncpg.connect(pool_url)
    try:
        await conn.execute(RESET_SQL)
        await conn.execute("VACUUM ANALYZE instances")
        await conn.execute("VACUUM ANALYZE claims")
    finally:
        await conn.close()
    await http.post(f"{fleet_url}/_reset")
    await http.post(f"{fleet_url}/_config", json={"provisionDelay": delay_ms / 1000})


async def load(pool_url: str, total: int, concurrency: int) -> tuple[list[Sample], float]:
    """`total` claims from `concurrency` workers, each on its own keep-alive connection, each
    claiming again as soon as it has an answer."""
    samples: list[Sample] = []
    remaining = [total]

    async def worker(n: int) -> None:
        connection = Connection(pool_url, AUTH)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                body = {"agentName": f"bench agent {n}-{remaining[0]}", "instructions": "be brief"}
                started = time.perf_counter()
                try:
                    status, answer = await connection.post_json("/api/pool/claim", body)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    samples.append(Sample((time.perf_counter() - started) * 1000, 0, None))
                    continue
                latency = (time.perf_counter() - started) * 1000
                samples.append(Sample(latency, status, answer.get("instanceId") if status == 200 else None))
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return samples, time.perf_counter() - started


async def verify(pool_url: str, samples: list[Sample], provisions: dict[str, int]) -> dict[str, int]:
    """Double claims, counted three independent ways: the DB, the answers and the fleet."""
    won = [s.instance_id for s in samples if s.status == 200]
    conn = await asyncpg.connect(pool_url)
    try:
        row = await conn.fetchrow(DOUBLES_SQL)
    finally:
        await conn.close()
    assert row is not None
    return {
        "claims_rows_sharing_an_instance": int(row["shared_rows"]),
        "answers_sharing_an_instance": len(won) - len(set(won)),
        "instances_provisioned_twice": sum(1 for n in provisions.values() if n > 1),
        "claimed_rows_not_matching_successes": abs(int(row["claimed"]) - len(won)),
        "left_claiming": int(row["claiming"]),
    }


@dataclass
class Pids:
    pool: int
    fleet: int

    def cpu(self) -> tuple[float, float, float]:
        return tree_cpu_seconds(self.pool), cpu_seconds(self.fleet), postgres_cpu_seconds()


def _tree(pid: int) -> list[psutil.Process]:
    """The pool process and its uvicorn workers (POOL_WORKERS > 1)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p.pid) for p in _tree(pid))


def tree_rss_mb(pid: int) -> float:
    total = 0
    for process in _tree(pid):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total / 2**20


def server_stack() -> str:
    """What uvicorn's loop="auto", http="auto" pick in the pool process."""
    fast = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name) is not None]
    loop = "uvloop" if "uvloop" in fast else "asyncio"
    return f"{loop} + {'httptools' if 'httptools' in fast else 'h11'}"


async def one_run(
    pool_url: str,
    db_url: str,
    fleet_url: str,
    http: httpx.AsyncClient,
    delay_ms: int,
    c: int,
    n: int,
    pids: Pids,
) -> dict[str, Any]:
    await reset(db_url, http, fleet_url, delay_ms)
    before = pids.cpu()
    samples, wall = await load(pool_url, n, c)
    after = pids.cpu()
    stats = (await http.get(f"{fleet_url}/_stats")).json()
    ok = [s for s in samples if s.status == 200]
    overhead = [s.latency_ms - stats["provisionMs"][s.instance_id] for s in ok if s.instance_id]
    return {
        "latency": [s.latency_ms for s in ok],
        "overhead": overhead,
        "throughput": len(ok) / wall,
        # CPU milliseconds per successful claim: pool, fleet, PostgreSQL.
        "cpu_ms": [(b - a) * 1000 / max(1, len(ok)) for a, b in zip(before, after, strict=True)],
        "errors": len(samples) - len(ok),
        "checks": await verify(db_url, samples, stats["provisions"]),
    }


def pool_env(db_url: str, idle: int) -> dict[str, str]:
    """The pool's settings for a claims run: its tick off, so nothing but claims runs."""
    return {
        "POOL_DATABASE_URL": db_url,
        "POOL_API_KEY": API_KEY,
        "POOL_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "POOL_SERVICES_URL": "http://127.0.0.1:9",
        "POOL_TICK_ENABLED": "false",
        "POOL_MAX_TOTAL": str(idle * 2),
    }


async def run(admin_url: str, config: ClaimsConfig, log_dir: Path) -> dict[str, Any]:
    # `POOL_WORKERS=2 python -m bench claims` measures two pool processes (inherited env).
    workers = int(os.environ.get("POOL_WORKERS", "1"))
    db_url = await fresh_database(admin_url, "pool")
    try:
        async with fleet_process(log_dir) as fleet:
            await seed(db_url, fleet.url, config.idle)
            env = pool_env(db_url, config.idle)
            floor_env = {"FLOOR_DATABASE_URL": db_url, "FLOOR_STATEMENTS": "1"}
            async with (
                app_process("pool-claims", "pool", env, log_dir) as pool,
                app_process("floor", "bench.floor", floor_env, log_dir) as floor,
                app_process(
                    "floor2", "bench.floor", {**floor_env, "FLOOR_STATEMENTS": "2"}, log_dir
                ) as floor2,
                httpx.AsyncClient() as http,
            ):
                # The pool, the floor (one statement) and the design's (two), by key.
                servers = {
                    "rows": (pool.url, Pids(pool.popen.pid, fleet.popen.pid)),
                    "floor_rows": (floor.url, Pids(floor.popen.pid, fleet.popen.pid)),
                    "floor2_rows": (floor2.url, Pids(floor2.popen.pid, fleet.popen.pid)),
                }
                load_before = load_average()
                for url, pids in servers.values():
                    await one_run(url, db_url, fleet.url, http, 0, 10, config.warmup_claims, pids)
                rows: dict[str, list[dict[str, Any]]] = {key: [] for key in servers}
                for delay_ms in config.delays_ms:
                    for c in config.concurrencies:
                        n = config.count(delay_ms, c)
                        # The servers take turns run by run, so all of them see the same machine.
                        runs: dict[str, list[dict[str, Any]]] = {key: [] for key in servers}
                        for _ in range(config.runs):
                            for key, (url, pids) in servers.items():
                                runs[key].append(
                                    await one_run(url, db_url, fleet.url, http, delay_ms, c, n, pids)
                                )
                        for key in servers:
                            rows[key].append(_row(delay_ms, c, n, runs[key]))
                rss = tree_rss_mb(pool.popen.pid)
    finally:
        await drop_database(admin_url, db_url)
    return {
        "idle": config.idle,
        "runs": config.runs,
        "pool_rss_mb": round(rss, 1),
        "pool_workers": workers,
        "server": server_stack(),
        "load_average": {"before": load_before, "after": load_average()},
        **rows,
    }


def _row(delay_ms: int, concurrency: int, n: int, runs: list[dict[str, Any]]) -> dict[str, Any]:
    latency = [x for r in runs for x in r["latency"]]
    overhead = [x for r in runs for x in r["overhead"]]
    checks: dict[str, int] = {}
    for r in runs:
        for key, value in r["checks"].items():
            checks[key] = checks.get(key, 0) + value
    return {
        "delay_ms": delay_ms,
        "concurrency": concurrency,
        "claims_per_run": n,
        "latency_ms": summary(latency),
        "overhead_ms": summary(overhead),
        "overhead_p50_per_run": spread([summary(r["overhead"])["p50"] for r in runs]),
        "throughput": spread([r["throughput"] for r in runs]),
        "errors": sum(r["errors"] for r in runs),
        "cpu_ms_per_claim": {
            name: round(statistics.median(r["cpu_ms"][i] for r in runs), 2)
            for i, name in enumerate(("pool", "fleet", "postgres"))
        },
        "checks": checks,
        "double_claims": sum(v for k, v in checks.items() if k != "left_claiming"),
        "samples_ms": [round(x, 2) for x in latency],
        "overhead_samples_ms": [round(x, 2) for x in overhead],
    }
