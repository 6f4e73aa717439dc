"""Placement across platforms, the whole product over real HTTP (DESIGN.md §9): the pool app with its
own loop, the services app with several platforms, the fake Railway with a real runtime behind
each deploy (and real local runtime processes in the mixed setup).

- Overflow: `railway-shared` (shared project) capped at N, instance N+1 lands in
  `railway-projects` (project per instance); a tick observes both at their O(pages) cost; the
  pool's status API and metrics show each platform.
- Drain: capacity 0 sends every new create to the next platform while the instances already on
  it stay, are observed and are destroyed there.
- A platform that answers "at capacity" (the fake's services-per-project limit) is skipped and
  backs off, and is tried again once its backoff has passed.
- Mixed `local` + fake Railway: create, idle, claim, destroy, nothing left anywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from tests.pool.e2e.placement_system import (
    RAILWAY_ENV,
    SERVICES_AUTH,
    TOKEN,
    System,
    destroy_all,
    idle,
    placed,
    platforms_seen,
    railway_pair,
)
from tests.support import free_port, serve, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
# Long enough to outlast the warm-up and one refill; the test then waits it out.
BACKOFF = 10.0


@pytest.fixture
async def system(
    services_db_url: str, pool_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[System]:
    fake = FakeRailway(
        FakeSettings(tokens={TOKEN}),
        DeploySettings(queued_seconds=0.05, building_seconds=0.05, deploying_seconds=0.1),
    )
    async with serve(fake.app()) as railway_url:
        for key, value in {**RAILWAY_ENV, "RAILWAY_API_URL": f"{railway_url}/graphql/v2"}.items():
            monkeypatch.setenv(key, value)
        project = fake.store.create_project("fleet", None, TOKEN, "production")
        yield System(fake, project.id, services_db_url, pool_db_url, free_port())


async def test_instance_n_plus_one_overflows_from_the_shared_project_to_project_per_instance(
    system: System,
) -> None:
    fake = system.fake
    settings = system.services_settings(railway_pair(system.project_id, shared_capacity=2))
    async with system.services(settings):
        async with system.pool(min_idle=3, max_total=4, tick_interval_seconds=600) as pool:
            await _overflow(system, pool)
        await destroy_all(system.port)
    assert fake.store.leftovers() == {"projects": ["fleet"], "services": [], "volumes": [], "domains": []}


async def _overflow(system: System, pool: httpx.AsyncClient) -> None:
    fake = system.fake
    await until(lambda: idle(pool, 3))
    where = await placed(system.port)
    assert sorted(where.values()) == ["railway-projects", "railway-shared", "railway-shared"]
    assert len(system.shared_services()) == 2 and len(system.instance_projects()) == 1

    # One tick observes both platforms, each about its own instances only (a fleet this small is
    # observed in full every tick: one aliased batch each, no listing), and records what it saw.
    before = Counter(fake.calls)
    tick = await pool.post("/api/pool/reconcile")
    assert tick.status_code == 200, tick.text
    spent = Counter(fake.calls)
    spent.subtract(before)
    assert {op: n for op, n in spent.items() if n} == {
        "ServiceInstanceStatusBatch": 1,
        "EnvironmentStatusBatch": 1,
    }
    views = await until(lambda: platforms_seen(pool, **{"railway-shared": 2, "railway-projects": 1}))
    assert {k: (v["capacity"], v["health"], v["priority"]) for k, v in views.items()} == {
        "railway-shared": (2, "full", 1),
        "railway-projects": (None, "ok", 2),
    }
    metrics = (await pool.get("/metrics")).text
    assert 'pool_platform_in_use{platform="railway-shared"} 2.0' in metrics
    assert 'pool_platform_capacity{platform="railway-projects"} +Inf' in metrics
    assert 'pool_platform_backing_off{platform="railway-shared"} 0.0' in metrics

    # A claim's refill is instance 4: the shared project is still full, so a project of its own.
    claimed = await pool.post("/api/pool/claim", json={"agentName": "Ada", "instructions": "hi"})
    assert claimed.status_code == 200, claimed.text
    await until(lambda: idle(pool, 3))
    assert sorted((await placed(system.port)).values()) == [
        "railway-projects",
        "railway-projects",
        "railway-shared",
        "railway-shared",
    ]
    # The claimed one, killed through the pool, goes from wherever it lives.
    killed = await pool.delete(f"/api/pool/instances/{claimed.json()['instanceId']}")
    assert killed.status_code == 200, killed.text


async def test_capacity_zero_drains_the_shared_project_while_its_instances_live_on_there(
    system: System,
) -> None:
    first = system.services_settings(railway_pair(system.project_id, shared_capacity=None))
    drained = system.services_settings(railway_pair(system.project_id, shared_capacity=0))
    async with system.pool(min_idle=2, max_total=2) as pool:
        async with system.services(first):
            await until(lambda: idle(pool, 2))
            before = await placed(system.port)
            assert sorted(before.values()) == ["railway-shared", "railway-shared"]
        async with system.services(drained):
            # Both stay where they are, observed there on every tick (idle, healthy).
            async def draining() -> bool:
                views = await platforms_seen(pool, **{"railway-shared": 2})
                return views is not None and views["railway-shared"]["health"] == "draining"

            await until(draining)
            # One destroyed goes from the shared project; its replacement goes to a project of its own.
            gone = sorted(before)[0]
            assert (await pool.delete(f"/api/pool/instances/{gone}")).status_code == 200
            await until(lambda: idle(pool, 2))
            after = await placed(system.port)
            assert gone not in after and len(system.shared_services()) == 1
            assert sorted(after.values()) == ["railway-projects", "railway-shared"]
            stayed = next(i for i, p in after.items() if p == "railway-shared")
            rows = {row["id"]: row["status"] for row in (await pool.get("/api/pool/instances")).json()}
            assert rows[stayed] == "idle"
    async with system.services(drained):
        await destroy_all(system.port)
    assert system.shared_services() == [] and system.instance_projects() == []


async def test_a_platform_at_capacity_is_skipped_while_it_backs_off_then_tried_again(system: System) -> None:
    fake = system.fake
    # Railway itself refuses a second service in the shared project: no cap configured here.
    fake.settings.services_per_project = 1
    settings = system.services_settings(
        railway_pair(system.project_id, shared_capacity=None), placement_backoff_seconds=BACKOFF
    )
    async with system.services(settings):
        async with system.pool(min_idle=2, max_total=2) as pool:
            await _skipped_then_retried(system, pool)
        await destroy_all(system.port)
    assert system.shared_services() == [] and system.instance_projects() == []


async def _skipped_then_retried(system: System, pool: httpx.AsyncClient) -> None:
    fake = system.fake
    await until(lambda: idle(pool, 2))
    where = await placed(system.port)
    assert sorted(where.values()) == ["railway-projects", "railway-shared"]
    # The failed try left nothing in the shared project.
    assert len(system.shared_services()) == 1

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{system.port}", headers=SERVICES_AUTH) as s:
        shared = {p["name"]: p for p in (await s.get("/platforms")).json()["platforms"]}["railway-shared"]
        assert (shared["health"], shared["consecutiveFailures"]) == ("backing off", 1)
        assert shared["lastError"] == (
            "railway ServiceCreate: Project has reached the maximum number of services (1)"
        )
        # Room again at Railway, but the pause holds: a refill meanwhile skips the shared project
        # without asking Railway, and lands in a project of its own again.
        fake.settings.services_per_project = 100
        asked = fake.calls["ServiceCreate"]
        moved = next(i for i, p in where.items() if p == "railway-projects")
        assert (await pool.delete(f"/api/pool/instances/{moved}")).status_code == 200
        await until(lambda: idle(pool, 2))
        where = await placed(system.port)
        assert sorted(where.values()) == ["railway-projects", "railway-shared"]
        assert fake.calls["ServiceCreate"] == asked + 1  # the new project's service only

        async def over() -> bool:
            view = {p["name"]: p for p in (await s.get("/platforms")).json()["platforms"]}
            return bool(view["railway-shared"]["health"] == "ok")

        await until(over, timeout=BACKOFF + 5)
        moved = next(i for i, p in where.items() if p == "railway-projects")
        assert (await pool.delete(f"/api/pool/instances/{moved}")).status_code == 200
        await until(lambda: idle(pool, 2))
        assert sorted((await placed(system.port)).values()) == ["railway-shared", "railway-shared"]
        shared = {p["name"]: p for p in (await s.get("/platforms")).json()["platforms"]}["railway-shared"]
        assert (shared["consecutiveFailures"], shared["backoffUntil"]) == (0, None)


async def test_mixed_local_and_railway_create_idle_claim_destroy(system: System, data_dir: Path) -> None:
    platforms = [
        {
            "name": "local",
            "provider": "local",
            "settings": {"local_data_dir": str(data_dir)},
            "priority": 1,
            "capacity": 1,
        },
        {
            "name": "railway",
            "provider": "railway",
            "settings": {"mode": "shared", "project_id": system.project_id},
            "priority": 2,
        },
    ]
    async with system.services(system.services_settings(platforms)):
        async with system.pool(min_idle=2, max_total=3) as pool:
            await _mixed(system, pool, data_dir)
        await destroy_all(system.port)
    assert list(data_dir.iterdir()) == []
    assert system.shared_services() == [] and system.fake.deploys.running() == []


async def _mixed(system: System, pool: httpx.AsyncClient, data_dir: Path) -> None:
    await until(lambda: idle(pool, 2))
    assert sorted((await placed(system.port)).values()) == ["local", "railway"]
    assert [p.name for p in data_dir.iterdir()] and len(system.shared_services()) == 1

    claimed = []
    for name in ("Ada", "Bo"):
        answer = await pool.post("/api/pool/claim", json={"agentName": name, "instructions": "hi"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "created"
        claimed.append(answer.json()["instanceId"])
    # The refill: local is full (one claimed instance lives there), so Railway.
    await until(lambda: idle(pool, 1))
    assert sorted((await placed(system.port)).values()) == ["local", "railway", "railway"]
    # Both claimed agents, one on each platform, destroyed through the pool.
    for instance_id in claimed:
        killed = await pool.delete(f"/api/pool/instances/{instance_id}")
        assert killed.status_code == 200, killed.text
    assert not set(claimed) & set(await placed(system.port))
