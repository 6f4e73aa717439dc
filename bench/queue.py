"""Claim queue: how honest is the ETA a queued claim is given (issue 12)?

The whole system as the soak runs it (devtools/soak/system.py: real `python -m services` and
`python -m pool` processes, the fake Railway with its realistic profile scaled in time, its
runtimes real processes), with a small warm pool. Waves of claims larger than the pool arrive
through `POST /api/pool/claims`; every claim that is answered `queued` keeps the ETA it was given
and is followed (`GET /api/pool/claims/{id}`) until it ends. The real wait is from the 202 to the
first answer that shows it `succeeded`, measured here; the error is |ETA − real wait|.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.stats import percentile, summary
from devtools.soak.system import POOL_KEY, Mode, SoakConfig, running_system

AUTH = {"Authorization": f"Bearer {POOL_KEY}"}
FOLLOW_SECONDS = 0.1


@dataclass
class QueueConfig:
    mode: Mode = "shared"
    seed: int = 7
    # 0.02: Railway's deploys of 60-180 s take 1.2-3.6 s.
    time_scale: float = 0.02
    min_idle: int = 2
    max_total: int = 60
    waves: int = 5
    claims_per_wave: int = 8
    wave_gap_s: float = 8.0
    claim_timeout_s: int = 120
    ready_timeout_s: float = 120.0


QUICK = QueueConfig(waves=2, claims_per_wave=5, wave_gap_s=5.0)


@dataclass
class Followed:
    first_status: str
    position: int | None
    eta_s: float | None
    wait_s: float | None
    final_status: str


async def _idle(client: httpx.AsyncClient) -> int:
    counts = (await client.get("/api/pool/counts", timeout=10)).json()
    return int(counts.get("idle", 0))


async def _wait_for_idle(client: httpx.AsyncClient, count: int, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while await _idle(client) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the pool did not reach {count} idle instances in {deadline_s:.0f} s")
        await asyncio.sleep(0.5)


async def _claim_and_follow(client: httpx.AsyncClient, config: QueueConfig, index: int) -> Followed:
    body = {"agentName": f"bench-{index}", "timeoutSeconds": config.claim_timeout_s}
    started = time.monotonic()
    answer = await client.post("/api/pool/claims", json=body, timeout=30)
    answer.raise_for_status()
    first = answer.json()
    status = str(first["status"])
    deadline = started + config.claim_timeout_s + 30
    while status in ("queued", "pending") and time.monotonic() < deadline:
        await asyncio.sleep(FOLLOW_SECONDS)
        followed = await client.get(f"/api/pool/claims/{first['id']}", timeout=30)
        status = str(followed.json()["status"]) if followed.status_code == 200 else status
    waited = time.monotonic() - started if status == "succeeded" else None
    eta = first.get("etaSeconds")
    return Followed(
        first_status=str(first["status"]),
        position=first.get("position"),
        eta_s=float(eta) if eta is not None else None,
        wait_s=waited,
        final_status=status,
    )


async def run(admin_url: str, config: QueueConfig, log_dir: Path) -> dict[str, Any]:
    soak = SoakConfig(
        mode=config.mode,
        seed=config.seed,
        time_scale=config.time_scale,
        min_idle=config.min_idle,
        max_total=config.max_total,
    )
    followed: list[Followed] = []
    async with (
        running_system(soak, admin_url) as system,
        httpx.AsyncClient(base_url=system.pool.url, headers=AUTH) as client,
    ):
        await _wait_for_idle(client, config.min_idle, config.ready_timeout_s)
        index = 0
        for wave in range(config.waves):
            claims = [_claim_and_follow(client, config, index + n) for n in range(config.claims_per_wave)]
            index += config.claims_per_wave
            followed += await asyncio.gather(*claims)
            if wave < config.waves - 1:
                await asyncio.sleep(config.wave_gap_s)
    return summarise(config, followed)


def summarise(config: QueueConfig, followed: list[Followed]) -> dict[str, Any]:
    queued = [
        f for f in followed if f.first_status == "queued" and f.wait_s is not None and f.eta_s is not None
    ]
    errors = [abs(f.eta_s - f.wait_s) for f in queued if f.eta_s is not None and f.wait_s is not None]
    relative = [abs(f.eta_s - f.wait_s) / f.wait_s for f in queued if f.eta_s is not None and f.wait_s]
    waits = [f.wait_s for f in queued if f.wait_s is not None]
    return {
        "config": {
            "mode": config.mode,
            "seed": config.seed,
            "time_scale": config.time_scale,
            "min_idle": config.min_idle,
            "waves": config.waves,
            "claims_per_wave": config.claims_per_wave,
            "wave_gap_s": config.wave_gap_s,
        },
        "claims": len(followed),
        "served_at_once": sum(1 for f in followed if f.first_status == "succeeded"),
        "queued": sum(1 for f in followed if f.first_status == "queued"),
        "queued_served": len(queued),
        "not_served": sum(1 for f in followed if f.final_status != "succeeded"),
        "wait_s": summary(waits),
        "abs_error_s": summary(errors),
        "median_abs_error_s": round(statistics.median(errors), 2) if errors else None,
        "median_wait_s": round(statistics.median(waits), 2) if waits else None,
        "median_relative_error": round(statistics.median(relative), 3) if relative else None,
        "p90_relative_error": round(percentile(relative, 90), 3) if relative else None,
        "pairs": [
            {"position": f.position, "eta_s": f.eta_s, "wait_s": round(f.wait_s, 2)}
            for f in queued
            if f.wait_s is not None
        ],
    }
