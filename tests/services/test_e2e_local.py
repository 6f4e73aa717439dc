"""End to end on one machine: services over real HTTP, real runtime processes, real Postgres."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from services.config import Settings
from services.main import create_app
from tests.services.conftest import AUTH, Rows, create_and_wait, runtime_processes
from tests.support import serve

pytestmark = pytest.mark.timeout(90)

IDS = ["e2einstance1", "e2einstance2", "e2einstance3"]


async def wait_for_batch(
    client: httpx.AsyncClient, base: str, done: Callable[[dict[str, Any]], bool], timeout: float = 30
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    batch: dict[str, Any] = {}
    while loop.time() < deadline:
        batch = (await client.post(f"{base}/status/batch", json={}, headers=AUTH)).json()
        if done(batch):
            return batch
        await asyncio.sleep(0.2)
    raise AssertionError(f"batch never got there: {batch}")


def all_healthy(batch: dict[str, Any]) -> bool:
    observed = batch["instances"].values()
    return bool(observed) and all(
        o["deployStatus"] == "running" and (o["health"] or {}).get("ok") for o in observed
    )


async def test_three_instances_come_up_serve_a_claim_and_leave_nothing_behind(
    make_settings: Callable[..., Settings], data_dir: Path, db_rows: Callable[[], Awaitable[Rows]]
) -> None:
    app = create_app(make_settings())
    async with serve(app) as base, httpx.AsyncClient(timeout=30) as client:
        created = {}
        for instance_id in IDS:
            created[instance_id] = await create_and_wait(
                client, {"instanceId": instance_id, "name": instance_id}, url=f"{base}/create-instance"
            )
            assert created[instance_id]["phase"] == "deploying", created[instance_id]
        assert len(runtime_processes(data_dir)) == 3

        batch = await wait_for_batch(client, base, all_healthy)
        assert sorted(batch["instances"]) == IDS

        first, second = created[IDS[0]], created[IDS[1]]
        claim = {"agentName": "Ada", "instructions": "Be brief."}
        refused = await client.post(
            f"{first['url']}/pool/provision",
            json=claim,
            headers={"Authorization": f"Bearer {second['gatewayToken']}"},
        )
        provisioned = await client.post(
            f"{first['url']}/pool/provision",
            json=claim,
            headers={"Authorization": f"Bearer {first['gatewayToken']}"},
        )
        assert refused.status_code == 401
        assert provisioned.status_code == 200, provisioned.text
        assert provisioned.json()["ok"] is True and provisioned.json()["status"] == "created"

        for instance_id in IDS:
            response = await client.delete(f"{base}/destroy/{instance_id}", headers=AUTH)
            assert response.json() == {"instanceId": instance_id, "destroyed": True, "alreadyGone": False}
        final = (await client.post(f"{base}/status/batch", json={}, headers=AUTH)).json()

    assert final["instances"] == {} and final["orphans"] == []
    assert runtime_processes(data_dir) == []
    assert list(data_dir.iterdir()) == []
    assert await db_rows() == ([], [])
    pids = [p.info["pid"] for p in psutil.process_iter(["pid", "environ"]) if _is_ours(p, data_dir)]
    assert pids == []


def _is_ours(proc: psutil.Process, data_dir: Path) -> bool:
    try:
        env = proc.info.get("environ") or {}
    except psutil.Error:
        return False
    return str(env.get("RUNTIME_DATA_DIR", "")).startswith(str(data_dir))


async def test_status_tells_the_truth_after_a_services_restart_and_a_crash(
    make_settings: Callable[..., Settings], data_dir: Path
) -> None:
    instance_id = IDS[0]
    async with serve(create_app(make_settings())) as base, httpx.AsyncClient(timeout=30) as client:
        done = await create_and_wait(
            client, {"instanceId": instance_id, "name": "a"}, url=f"{base}/create-instance"
        )
        assert done["phase"] == "deploying", done
        await wait_for_batch(client, base, all_healthy)

    # A new services process (new app, new platform object) on the same database and data dir.
    async with serve(create_app(make_settings())) as base, httpx.AsyncClient(timeout=30) as client:
        batch = (await client.post(f"{base}/status/batch", json={}, headers=AUTH)).json()
        assert all_healthy(batch), batch

        (proc,) = runtime_processes(data_dir)
        os.killpg(proc.pid, signal.SIGKILL)
        batch = await wait_for_batch(
            client, base, lambda b: b["instances"][instance_id]["deployStatus"] == "crashed", timeout=10
        )
        assert batch["instances"][instance_id]["health"] is None

        destroyed = await client.delete(f"{base}/destroy/{instance_id}", headers=AUTH)
        assert destroyed.json()["destroyed"] is True
    assert list(data_dir.iterdir()) == []
