"""`python -m pool` with POOL_WORKERS=2: two worker processes on one port, each claiming from the
same database, and no instance handed out twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psutil
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import API_KEY, AUTH, FakeServices
from tests.pool.factories import ENCRYPTION_KEY, add_fleet_instances
from tests.reliability.processes import pool_process

IDLE = 12


async def test_two_workers_serve_claims_without_double_claims(
    pool_db_url: str,
    fleet: FakeFleet,
    fake_services: FakeServices,
    sessionmaker: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    ids = await add_fleet_instances(sessionmaker, fleet, IDLE)
    env = {
        "POOL_ENVIRONMENT": "test",
        "POOL_DATABASE_URL": pool_db_url,
        "POOL_API_KEY": API_KEY,
        "POOL_SERVICES_URL": fake_services.url,
        "POOL_ENCRYPTION_KEY": ENCRYPTION_KEY,
        "POOL_TICK_ENABLED": "false",
        "POOL_WORKERS": "2",
    }
    log = tmp_path / "pool.log"
    async with pool_process(env, log) as pool:
        children = [" ".join(c.cmdline()) for c in psutil.Process(pool.proc.pid).children(recursive=True)]

        # A fresh connection per claim: the kernel hands each to whichever worker accepts first.
        async def claim(n: int) -> httpx.Response:
            async with httpx.AsyncClient(timeout=30) as http:
                body = {"agentName": f"agent {n}", "instructions": "hi"}
                return await http.post(f"{pool.url}/api/pool/claim", json=body, headers=AUTH)

        answers = await asyncio.gather(*(claim(n) for n in range(IDLE + 3)))
    # uvicorn's supervisor spawns the workers (beside them: multiprocessing's resource tracker).
    assert len([c for c in children if "multiprocessing.spawn" in c]) == 2
    won = [a.json()["instanceId"] for a in answers if a.status_code == 200]
    assert sorted(won) == sorted(ids)  # every idle instance once, none twice
    assert sorted(a.status_code for a in answers if a.status_code != 200) == [503, 503, 503]
    assert all(fleet.agents[i].provisions == 1 for i in ids)
    assert "Traceback" not in log.read_text()
