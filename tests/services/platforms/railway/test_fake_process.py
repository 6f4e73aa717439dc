"""The fake as a process (`python -m devtools.railway_fake`) and its runtime processes."""

from __future__ import annotations

import asyncio
import sys

import httpx
import psutil

from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from services.platforms.base import InstanceSpec
from tests.services.platforms.railway.harness import TOKEN, Harness, recorder
from tests.support import free_port, serve


async def test_module_serves_the_api_on_the_given_port() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "devtools.railway_fake",
        "--port",
        str(port),
        "--token",
        TOKEN,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        assert f"127.0.0.1:{port}/graphql/v2" in line.decode()
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    response = await client.post(
                        f"http://127.0.0.1:{port}/graphql/v2",
                        json={"query": "query { projects { edges { node { id } } } }"},
                        headers={"Authorization": f"Bearer {TOKEN}"},
                    )
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        assert response.json() == {"data": {"projects": {"edges": []}}}
    finally:
        process.terminate()
        await process.wait()


async def test_runtime_processes_stop_when_the_fake_shuts_down() -> None:
    fake = FakeRailway(
        FakeSettings(), DeploySettings(queued_seconds=0, building_seconds=0, deploying_seconds=0.1)
    )
    async with httpx.AsyncClient(timeout=30) as http:
        async with serve(fake.app()) as url:
            harness = Harness(fake, url, http)
            platform = harness.platform("shared")
            _, on_progress = recorder()
            ref = await platform.create(
                InstanceSpec("abcdefabcdef", "a", {"GATEWAY_TOKEN": "gw-1"}, "i"), on_progress
            )
            for _ in range(200):
                if fake.deploys.running():
                    break
                await asyncio.sleep(0.02)
            (key,) = fake.deploys.running()
            pid = fake.deploys.processes[key].pid
            for _ in range(300):
                try:
                    if (await http.get(f"{ref.url}/pool/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            assert (await http.get(f"{ref.url}/pool/health")).json()["ready"] is True
            assert psutil.pid_exists(pid)
        assert fake.deploys.running() == []
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
