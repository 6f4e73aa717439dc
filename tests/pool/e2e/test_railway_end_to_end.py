"""The whole product on the fake Railway: the pool app with its own loop, the services app with the
Railway provider, and the fake served over real HTTP with a real runtime process behind each
deploy. Both modes: warm-up → claim through the pool → kill → drain, leaving nothing behind; a
tick costs O(pages) Railway calls; a 429 storm or a burst of HTTP-200 errors during a tick
changes no instance status."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from pool.main import create_app as create_pool_app
from pool.models import Instance
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from shared.db import make_engine, make_sessionmaker
from tests.pool.tick.conftest import SERVICES_KEY, pool_settings
from tests.support import serve, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "rw-e2e-token"
KEY = "test-pool-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# The Railway client's attempts per call: a storm of exactly this many failures outlasts them all.
ATTEMPTS = 3
# The loop's first tick warms the pool up; later ticks are run on demand so they can be measured.
INTERVAL = 600.0
# Railway operations one tick costs at this fleet size: one aliased batch about the instances it
# observes (all of a fleet this small), never a listing (that is the safety net's, pool.tick.listing).
TICK_CALLS = {
    "shared": {"ServiceInstanceStatusBatch": 1},
    "per-instance": {"EnvironmentStatusBatch": 1},
}


@dataclass
class Product:
    fake: FakeRailway
    pool: httpx.AsyncClient
    rows: Callable[[], Awaitable[dict[str, tuple[str, int, str | None]]]]


@pytest.fixture(params=["shared", "per-instance"])
async def product(
    request: pytest.FixtureRequest, services_db_url: str, pool_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Product]:
    mode: str = request.param
    fake = FakeRailway(
        FakeSettings(tokens={TOKEN}),
        DeploySettings(queued_seconds=0.05, building_seconds=0.05, deploying_seconds=0.1),
    )
    engine = make_engine(pool_db_url)
    sessionmaker = make_sessionmaker(engine)

    async def rows() -> dict[str, tuple[str, int, str | None]]:
        async with sessionmaker() as session:
            found = await session.scalars(select(Instance))
            return {r.id: (r.status, r.failed_probes, r.deploy_status) for r in found}

    try:
        async with serve(fake.app()) as railway_url:
            env = {
                "RAILWAY_API_TOKEN": TOKEN,
                "RAILWAY_API_URL": f"{railway_url}/graphql/v2",
                "RAILWAY_MODE": mode,
                "RAILWAY_PUBLIC_SCHEME": "http",
                "RAILWAY_PROJECT_CREATE_COOLDOWN_SECONDS": "0",
                "RAILWAY_VOLUME_CREATE_COOLDOWN_SECONDS": "0",
                "RAILWAY_REQUESTS_PER_SECOND": "1000",
                "RAILWAY_MAX_ATTEMPTS": str(ATTEMPTS),
                "RAILWAY_BACKOFF_SECONDS": "0.01",
                "RAILWAY_MAX_RETRY_AFTER_SECONDS": "0.05",
            }
            if mode == "shared":
                project = fake.store.create_project("fleet", None, TOKEN, "production")
                env["RAILWAY_PROJECT_ID"] = project.id
            for key, value in env.items():
                monkeypatch.setenv(key, value)
            services_settings = ServicesSettings(
                environment="test",
                database_url=services_db_url,
                api_key=SERVICES_KEY,
                encryption_key="test-encryption-key",
                platform="railway",
                probe_timeout_seconds=1.0,
                # No sweep: every Railway call in this test comes from the pool's requests.
                sweep_interval_seconds=0,
            )
            async with serve(create_services_app(services_settings)) as services_url:
                settings = pool_settings(
                    pool_db_url,
                    services_url,
                    min_idle=2,
                    max_total=3,
                    api_key=KEY,
                    tick_enabled=True,
                    tick_interval_seconds=INTERVAL,
                )
                async with (
                    serve(create_pool_app(settings)) as pool_url,
                    httpx.AsyncClient(base_url=pool_url, headers=AUTH, timeout=60) as pool,
                ):
                    yield Product(fake, pool, rows)
    finally:
        await engine.dispose()


async def counts(pool: httpx.AsyncClient) -> dict[str, int]:
    return dict((await pool.get("/api/pool/counts")).json())


async def idle(pool: httpx.AsyncClient, n: int) -> bool:
    return (await counts(pool))["idle"] >= n


async def measured_tick(product: Product) -> tuple[dict[str, Any], dict[str, int]]:
    """One reconcile tick, and the Railway calls it cost by operation."""
    before = Counter(product.fake.calls)
    response = await product.pool.post("/api/pool/reconcile")
    assert response.status_code == 200, response.text
    spent = Counter(product.fake.calls)
    spent.subtract(before)
    return response.json()["result"], {op: n for op, n in spent.items() if n}


async def test_warm_up_claim_kill_drain_through_the_pool_leaves_nothing_on_railway(
    product: Product, request: pytest.FixtureRequest
) -> None:
    mode = request.node.callspec.params["product"]
    fake, pool = product.fake, product.pool
    started = time.monotonic()

    # Warm-up by the pool's own loop: its first tick creates on Railway, the prober promotes.
    await until(lambda: idle(pool, 2))
    live = [s for s in fake.store.services.values() if not s.deleted_at]
    assert len(live) == 2
    assert {fake.store.service_deployments(s.id)[-1].status for s in live} == {"SUCCESS"}
    assert len(fake.deploys.running()) == 2
    warmed = time.monotonic() - started

    summary, calls = await measured_tick(product)
    assert (summary["idle"], summary["actions"], summary["error"]) == (2, {}, None)
    assert calls == TICK_CALLS[mode]

    claimed = await pool.post("/api/pool/claim", json={"agentName": "Ada", "instructions": "Be brief."})
    assert claimed.status_code == 200, claimed.text
    claim = claimed.json()
    assert (claim["status"], claim["agentName"]) == ("created", "Ada")

    # The claim woke the refill: the fleet grows to max_total, and a tick still costs the same.
    await until(lambda: idle(pool, 2))
    summary, calls_at_three = await measured_tick(product)
    assert (summary["claimed"], summary["idle"], summary["actions"]) == (1, 2, {})
    assert calls_at_three == calls == TICK_CALLS[mode]

    killed = await pool.delete(f"/api/pool/instances/{claim['instanceId']}")
    assert killed.status_code == 200, killed.text
    drained = await pool.post("/api/pool/drain", json={"count": 10})
    assert drained.status_code == 200, drained.text
    assert (len(drained.json()["drained"]), drained.json()["failed"]) == (2, [])

    assert await product.rows() == {}
    assert fake.store.leftovers() == {
        "projects": ["fleet"] if mode == "shared" else [],
        "services": [],
        "volumes": [],
        "domains": [],
    }
    assert fake.deploys.running() == []
    print(
        f"\n{mode}: warm-up {warmed:.1f}s, Railway calls per tick {sum(calls.values())} {calls}, "
        f"total {time.monotonic() - started:.1f}s, all calls {dict(fake.calls)}"
    )


async def test_a_429_storm_and_a_burst_of_http_200_errors_during_a_tick_change_no_status(
    product: Product,
) -> None:
    fake, pool = product.fake, product.pool
    await until(lambda: idle(pool, 2))
    claimed = await pool.post("/api/pool/claim", json={"agentName": "Bo", "instructions": "hi"})
    assert claimed.status_code == 200, claimed.text
    await until(lambda: idle(pool, 2))
    before = await product.rows()
    assert sorted(status for status, _, _ in before.values()) == ["claimed", "idle", "idle"]

    # Every attempt of the tick's status call is refused: 429s, then HTTP 200 with `errors[]`.
    for status, rejected in ((429, "429"), (200, "Problem processing request")):
        fake.fail_next(ATTEMPTS, status=status)
        summary, _ = await measured_tick(product)
        assert fake.rejected[rejected] == ATTEMPTS
        assert summary["error"].startswith("platform error:"), summary
        assert summary["actions"] == {}
        assert await product.rows() == before

    # Railway answers again: the same fleet, observed healthy, still nothing to change.
    summary, _ = await measured_tick(product)
    assert (summary["error"], summary["actions"]) == (None, {})
    assert await product.rows() == before
