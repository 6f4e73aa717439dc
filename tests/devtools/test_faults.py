"""The fakes' latency and fault profiles (devtools/faults.py), the vendor fakes served over HTTP to the
real plugins, and the fake Railway on the realistic profile."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from devtools.faults import INSTANT, REALISTIC, Faults
from devtools.railway_fake import FakeRailway, FakeSettings
from devtools.vendor_fakes.server import VendorServer
from services.tools.agentmail import AgentMailProvider, AgentMailSettings
from services.tools.openrouter import OpenRouterProvider, OpenRouterSettings, OpenRouterUnavailable
from tests.support import serve


def test_realistic_latencies_follow_the_spec_medians_and_tails() -> None:
    faults = Faults(REALISTIC, seed=7)
    queries = [faults.latency("query") for _ in range(4000)]
    slow = [faults.latency("slow") for _ in range(4000)]
    assert statistics.median(queries) == pytest.approx(0.25, rel=0.1)
    assert sorted(queries)[3960] == pytest.approx(1.5, rel=0.25)
    assert statistics.median(slow) == pytest.approx(2.0, rel=0.1)
    assert max(slow) > 5.0  # a tail, not a constant


def test_the_time_scale_shrinks_durations_but_not_rates() -> None:
    fast = Faults(REALISTIC, time_scale=0.01, seed=7)
    real = Faults(REALISTIC, time_scale=1.0, seed=7)
    assert fast.latency("mutation") == pytest.approx(real.latency("mutation") * 0.01)
    assert fast.cooldown == pytest.approx(0.3) and fast.retry_after == pytest.approx(0.03)
    rolled = Faults(REALISTIC, time_scale=0.01, seed=3)
    kinds = [rolled.decide() for _ in range(20000)]
    assert 0.005 < kinds.count("error") / len(kinds) < 0.02
    assert kinds.count("timeout") > 0 and kinds.count("429") > 0


def test_one_seed_replays_the_same_dice_and_instant_injects_nothing() -> None:
    first, second = Faults(REALISTIC, seed=42), Faults(REALISTIC, seed=42)
    assert [first.decide() for _ in range(3000)] == [second.decide() for _ in range(3000)]
    instant = Faults(INSTANT)
    assert {instant.decide() for _ in range(1000)} == {"ok"} and instant.latency("slow") == 0
    instant.storm(2)
    assert [instant.decide() for _ in range(3)] == ["429", "429", "ok"]
    assert instant.injected["429"] == 2


async def test_the_real_plugins_provision_through_the_vendor_fakes_over_http() -> None:
    server = VendorServer.with_profile("instant")
    vendors = server.vendors
    async with serve(server.app()) as base, httpx.AsyncClient() as http:  # type: ignore[arg-type]
        openrouter = OpenRouterProvider.from_settings(
            OpenRouterSettings(
                management_key=vendors.openrouter.management_key, base_url=f"{base}/openrouter"
            ),
            http,
        )
        agentmail = AgentMailProvider.from_settings(
            AgentMailSettings(api_key=vendors.agentmail.api_key, base_url=f"{base}/agentmail"), http
        )
        key = await openrouter.provision("abc123def456")
        inbox = await agentmail.provision("abc123def456")
        inventory = (await http.get(f"{base}/_inventory")).json()
        assert inventory["openrouter"] == ["warmpool-abc123def456"]
        assert len(inventory["agentmail"]) == 1 and vendors.agentmail.inboxes[inbox.resource_id]
        assert key.env_value == vendors.openrouter.secrets[key.resource_id]

        # A storm: every call 429 with Retry-After, until it passes; the plugin calls it transient.
        await http.post(f"{base}/_storm", json={"vendor": "openrouter", "calls": 50, "outcome": "429"})
        raw = await http.get(f"{base}/openrouter/keys", headers={"Authorization": "Bearer x"})
        assert raw.status_code == 429 and raw.headers["retry-after"] == "1"
        with pytest.raises(OpenRouterUnavailable):
            await openrouter.provision("fff123def456")
        assert (await http.get(f"{base}/_faults")).json()["openrouter"]["429"] >= 2

        await http.post(f"{base}/_storm", json={"vendor": "openrouter", "calls": 0})
        await openrouter.revoke(key.resource_id, key.meta)
        assert vendors.openrouter.keys == {}


async def test_the_realistic_railway_fake_is_slow_and_a_lost_answer_still_creates() -> None:
    faults = Faults.named("realistic", time_scale=0.05, seed=1, salt="railway")
    fake = FakeRailway(FakeSettings(tokens={"t"}, faults=faults))
    assert fake.settings.project_create_interval == pytest.approx(1.5)  # 30 s cooldown, scaled
    query = {"query": "query Me { projects { edges { node { id } } } }", "operationName": "Me"}
    create = {
        "query": "mutation P($input: ProjectCreateInput!) { projectCreate(input: $input) { id } }",
        "variables": {"input": {"name": "lost"}},
        "operationName": "P",
    }
    async with serve(fake.app()) as url, httpx.AsyncClient(timeout=3) as http:
        headers = {"Authorization": "Bearer t"}
        started = time.monotonic()
        for _ in range(5):
            await http.post(f"{url}/graphql/v2", json=query, headers=headers)
        assert time.monotonic() - started > 0.01  # queries take time now
        faults.outage(1, "timeout")
        faults.with_profile(hang_seconds=5.0)
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"{url}/graphql/v2", json=create, headers=headers, timeout=0.5)
        assert fake.store.leftovers()["projects"] == ["lost"]  # done, answer lost
        faults.storm(1)
        limited = await http.post(f"{url}/graphql/v2", json=query, headers=headers)
        assert limited.status_code == 429 and float(limited.headers["retry-after"]) == 0.15
