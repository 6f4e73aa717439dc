"""Deploy events end to end: the fake Railway's notification rule delivers to services' webhook,
services asks the pool, the pool observes the instance and `decide()` rules. The pool's tick and
starting prober are slowed to 10 minutes, so whatever changes within the test came from events.

Cases: the rule made at start-up (and found, not duplicated, on a restart); SUCCESS promotes to
idle; a real crash is seen at once; a forged crash, duplicates and a late `deployed` of a removed
instance change nothing wrong; other environments, other projects and unknown services are not
relayed; a wrong secret is a 404 that logs nothing of the path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from devtools.railway_fake.deploys import free_port
from pool.main import create_app as create_pool_app
from pool.models import Instance
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from shared.db import make_engine, make_sessionmaker
from tests.pool.tick.conftest import SERVICES_KEY, pool_settings
from tests.support import serve, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

TOKEN = "rw-events-token"
KEY = "test-pool-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
SECRET = "evt_" + "k" * 28
SLOW = 600.0
# One observation of one instance costs this Railway listing in shared mode.
# The Railway operations one observation of an instance may cost: the subset batch (shared mode asks
# the service instances it names), or the listing.
OBSERVE_CALLS = ("ServiceInstanceStatusBatch", "EnvironmentServiceInstances")


@dataclass
class Product:
    fake: FakeRailway
    pool: httpx.AsyncClient
    services_url: str
    environment_id: str
    project_id: str
    rows: Callable[[], Awaitable[dict[str, str]]]

    async def deliver(self, body: dict[str, Any], secret: str = SECRET) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(f"{self.services_url}/webhooks/railway/{secret}", json=body)

    def event(self, kind: str, service_id: str, **resource: Any) -> dict[str, Any]:
        ids = {
            "project": {"id": self.project_id},
            "environment": {"id": self.environment_id},
            "service": {"id": service_id},
            **resource,
        }
        return {"type": kind, "resource": ids, "details": {"status": "SUCCESS"}}


@pytest.fixture
async def product(
    services_db_url: str, pool_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Product]:
    fake = FakeRailway(
        FakeSettings(tokens={TOKEN}),
        # Long enough that services has recorded its create when SUCCESS is delivered, as with real deploys.
        DeploySettings(queued_seconds=0.05, building_seconds=0.05, deploying_seconds=1.5),
    )
    engine = make_engine(pool_db_url)
    sessionmaker = make_sessionmaker(engine)

    async def rows() -> dict[str, str]:
        async with sessionmaker() as session:
            return {r.id: r.status for r in await session.scalars(select(Instance))}

    project = fake.store.create_project("fleet", "ws-events", TOKEN, "production")
    environment = fake.store.live_environments(project.id)[0]
    services_port, pool_port = free_port(), free_port()
    env = {
        "RAILWAY_API_TOKEN": TOKEN,
        "RAILWAY_MODE": "shared",
        "RAILWAY_PROJECT_ID": project.id,
        "RAILWAY_PUBLIC_SCHEME": "http",
        "RAILWAY_REQUESTS_PER_SECOND": "1000",
        "RAILWAY_BACKOFF_SECONDS": "0.01",
        "RAILWAY_WEBHOOK_SECRET": SECRET,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        async with serve(fake.app()) as railway_url:
            monkeypatch.setenv("RAILWAY_API_URL", f"{railway_url}/graphql/v2")
            services_settings = ServicesSettings(
                environment="test",
                database_url=services_db_url,
                api_key=SERVICES_KEY,
                encryption_key="test-encryption-key",
                platform="railway",
                probe_timeout_seconds=1.0,
                sweep_interval_seconds=0,
                port=services_port,
                pool_url=f"http://127.0.0.1:{pool_port}",
            )
            async with serve(create_services_app(services_settings), port=services_port) as services_url:
                settings = pool_settings(
                    pool_db_url,
                    services_url,
                    min_idle=1,
                    max_total=1,
                    api_key=KEY,
                    tick_enabled=True,
                    tick_interval_seconds=SLOW,
                    starting_probe_interval_seconds=SLOW,
                    event_observe_spacing_seconds=0.5,
                )
                async with (
                    serve(create_pool_app(settings), port=pool_port) as pool_url,
                    httpx.AsyncClient(base_url=pool_url, headers=AUTH, timeout=60) as pool,
                ):
                    yield Product(fake, pool, services_url, environment.id, project.id, rows)
    finally:
        await engine.dispose()


async def only_instance(product: Product, status: str) -> tuple[str, str]:
    """(instance id, its Railway service id) once the one instance has `status`."""
    rows = await until(lambda: _with_status(product, status))
    (instance_id,) = rows
    services = [s for s in product.fake.store.services.values() if not s.deleted_at]
    (service,) = services
    return instance_id, service.id


async def _with_status(product: Product, status: str) -> list[str]:
    return [i for i, s in (await product.rows()).items() if s == status]


def observations(product: Product) -> int:
    return sum(product.fake.calls[call] for call in OBSERVE_CALLS)


async def test_the_rule_is_made_once_and_success_promotes_without_a_tick(product: Product) -> None:
    fake = product.fake
    await until(lambda: _rules(fake))
    (rule,) = fake.notifications.rules.values()
    assert rule.channel_configs == [
        {"type": "webhook", "url": f"{product.services_url}/webhooks/railway/{SECRET}"}
    ]
    # The first tick created the instance; only the SUCCESS event can promote it before the next.
    started = time.monotonic()
    instance_id, service_id = await only_instance(product, "idle")
    assert time.monotonic() - started < 30
    assert fake.notifications.outcomes.get("200", 0) >= 1
    counted = (await product.pool.get("/api/pool/counts")).json()
    assert counted["idle"] == 1
    # A restart of services finds the rule instead of making another.
    settings = ServicesSettings(
        environment="test",
        database_url="postgresql://unused/unused",
        api_key=SERVICES_KEY,
        platform="railway",
        port=int(product.services_url.rsplit(":", 1)[1]),
    )
    from services.events.subscribe import webhook_url
    from services.platforms.registry import build_platforms

    async with httpx.AsyncClient(timeout=10) as http:
        platforms = build_platforms(settings, http)
        (entry,) = platforms
        url = webhook_url(settings, entry.provider, SECRET)
        assert await entry.platform.subscribe_events(url) == "exists"  # type: ignore[attr-defined]
    assert len(fake.notifications.rules) == 1


async def _rules(fake: FakeRailway) -> bool:
    return bool(fake.notifications.rules)


async def test_a_real_crash_is_seen_at_once_a_forged_one_changes_nothing(product: Product) -> None:
    fake = product.fake
    instance_id, service_id = await only_instance(product, "idle")
    await fake.notifications.settle()

    # Forged (or stale) crash of a healthy instance: one observation, still idle.
    before = observations(product)
    answer = await product.deliver(product.event("Deployment.crashed", service_id))
    assert answer.status_code == 200, answer.text
    assert answer.json()["observed"] == {instance_id: "started"}
    await until(lambda: _observed_since(product, before, 1))
    await asyncio.sleep(0.5)
    assert await product.rows() == {instance_id: "idle"}

    # Twenty duplicates at once: one observation in flight, one more after it.
    before = observations(product)
    answers = await asyncio.gather(
        *(product.deliver(product.event("Deployment.deployed", service_id)) for _ in range(20))
    )
    assert {a.status_code for a in answers} == {200}
    said = Counter(a.json()["observed"][instance_id] for a in answers)
    assert said["started"] == 1 and said["queued"] <= 1
    await asyncio.sleep(2.0)
    assert 1 <= observations(product) - before <= 2
    assert await product.rows() == {instance_id: "idle"}

    # A real crash: the runtime dies, the deployment turns CRASHED, the event comes, the pool
    # observes the crash and removes the instance, ten minutes before its next tick.
    key = next(k for k in fake.deploys.processes if k[0] == service_id)
    fake.deploys.processes[key].kill()
    await until(lambda: _gone(product, instance_id), timeout=30)

    # A late `deployed` of the removed instance's service: nothing of ours, nothing resurrected.
    await fake.notifications.settle()
    late = await product.deliver(product.event("Deployment.deployed", service_id))
    assert late.status_code == 200
    assert late.json() == {"ok": True, "ignored": "no instance of ours"}
    assert instance_id not in await product.rows()


async def _observed_since(product: Product, before: int, count: int) -> bool:
    return observations(product) - before >= count


async def _gone(product: Product, instance_id: str) -> bool:
    return instance_id not in await product.rows()


async def test_events_not_of_ours_are_not_relayed(product: Product) -> None:
    instance_id, service_id = await only_instance(product, "idle")
    await product.fake.notifications.settle()
    before = observations(product)
    not_ours = [
        product.event("Deployment.crashed", service_id, environment={"id": "pr-environment"}),
        product.event("Deployment.crashed", service_id, project={"id": "another-project"}),
        product.event("Deployment.crashed", "a-service-we-never-made"),
        {"type": "Volume.usage", "resource": {}},
    ]
    for body in not_ours:
        answer = await product.deliver(body)
        assert answer.status_code == 200, answer.text
        assert "ignored" in answer.json()
    await asyncio.sleep(0.5)
    assert observations(product) == before
    assert await product.rows() == {instance_id: "idle"}
    bad = await product.deliver({"x": 1}, secret=SECRET)
    assert bad.status_code == 200
    async with httpx.AsyncClient(timeout=10) as http:
        not_json = await http.post(f"{product.services_url}/webhooks/railway/{SECRET}", content=b"{")
    assert not_json.status_code == 400
    assert not_json.json()["error"]


async def test_a_wrong_secret_is_a_404_that_logs_nothing_of_it(
    product: Product, caplog: pytest.LogCaptureFixture
) -> None:
    guess = "guessed_" + "g" * 24
    caplog.set_level(logging.INFO)
    for provider, secret in (
        ("railway", guess),
        ("railway", SECRET[:-1]),
        ("local", SECRET),
        ("nope", guess),
    ):
        answer = (
            await product.deliver({"type": "Deployment.crashed"}, secret=secret)
            if provider == "railway"
            else (await _post(product, f"/webhooks/{provider}/{secret}"))
        )
        assert answer.status_code == 404
        assert answer.json()["detail"] == "not found"
    # Services' own lines. uvicorn's access log is off in every real process (services/__main__.py)
    # but on in the tests' server; httpx's lines here are the sender's (this test's client).
    ours = [r.getMessage() for r in caplog.records if r.name not in ("uvicorn.access", "httpx")]
    assert any("/webhooks/railway/***" in line for line in ours)
    assert not any(guess in line or SECRET[:-1] in line for line in ours)
    counts = (await _get(product, "/webhooks/counts", {"Authorization": f"Bearer {SERVICES_KEY}"})).json()
    assert counts["deploy_events.unknown_secret"] == 4


async def _post(product: Product, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"{product.services_url}{path}", json={})


async def _get(product: Product, path: str, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{product.services_url}{path}", headers=headers)
