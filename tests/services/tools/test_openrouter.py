from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from devtools.vendor_fakes.openrouter import BASE_URL, FakeOpenRouter
from services.tools.openrouter import (
    OpenRouterAuthError,
    OpenRouterProvider,
    OpenRouterSettings,
    OpenRouterUnavailable,
)

INSTANCE = "abc123def456"


@pytest.fixture
def fake() -> FakeOpenRouter:
    return FakeOpenRouter()


@pytest.fixture
async def provider(fake: FakeOpenRouter) -> AsyncIterator[OpenRouterProvider]:
    settings = OpenRouterSettings(management_key=fake.management_key, key_limit=2.5)
    async with respx.mock(assert_all_called=False) as router, httpx.AsyncClient() as http:
        fake.install(router)
        yield OpenRouterProvider.from_settings(settings, http)


async def test_provision_creates_a_key_named_after_the_instance_with_the_limit(
    provider: OpenRouterProvider, fake: FakeOpenRouter
) -> None:
    grant = await provider.provision(INSTANCE)

    key = fake.keys[grant.resource_id]
    assert (key["name"], key["limit"], key["disabled"]) == (f"warmpool-{INSTANCE}", 2.5, False)
    assert grant.env_value == fake.secrets[grant.resource_id]
    assert grant.env_value.startswith("sk-or-v1-")
    assert fake.created == 1


async def test_revoke_deletes_the_key_and_a_second_revoke_is_success(
    provider: OpenRouterProvider, fake: FakeOpenRouter
) -> None:
    grant = await provider.provision(INSTANCE)

    await provider.revoke(grant.resource_id, grant.meta)
    await provider.revoke(grant.resource_id, grant.meta)

    assert fake.keys == {}
    assert fake.deleted == 1


async def test_a_non_management_key_is_a_permanent_auth_error(fake: FakeOpenRouter) -> None:
    settings = OpenRouterSettings(management_key="sk-or-v1-" + "0" * 64)
    async with respx.mock(assert_all_called=False) as router, httpx.AsyncClient() as http:
        fake.install(router)
        provider = OpenRouterProvider.from_settings(settings, http)
        with pytest.raises(OpenRouterAuthError, match="Only management keys"):
            await provider.provision(INSTANCE)
    assert fake.keys == {}


async def test_create_failing_with_500_is_transient_and_not_retried(
    provider: OpenRouterProvider, fake: FakeOpenRouter
) -> None:
    fake.failures.fail("create", 500)

    with pytest.raises(OpenRouterUnavailable):
        await provider.provision(INSTANCE)

    # A blind retry of a create without an idempotency key could mint a second key.
    assert fake.created == 0
    assert fake.failures.next("create") is None


async def test_list_rate_limited_is_retried_honouring_retry_after(
    provider: OpenRouterProvider, fake: FakeOpenRouter
) -> None:
    fake.add_key(f"warmpool-{INSTANCE}")
    fake.failures.fail("list", 429)

    items = await provider.inventory()

    assert [item.instance_id for item in items] == [INSTANCE]


async def test_inventory_pages_past_100_and_keeps_only_our_prefix(
    provider: OpenRouterProvider, fake: FakeOpenRouter
) -> None:
    ours = {f"{n:012d}" for n in range(150)}
    for instance_id in ours:
        fake.add_key(f"warmpool-{instance_id}")
    fake.add_key("someone-elses-key")

    items = await provider.inventory()

    assert {item.instance_id for item in items} == ours
    assert all(item.created_at is not None for item in items)


async def test_disable_and_top_up_patch_the_key(provider: OpenRouterProvider, fake: FakeOpenRouter) -> None:
    grant = await provider.provision(INSTANCE)

    await provider.disable(grant.resource_id)
    await provider.top_up(grant.resource_id, 10.0)

    key = fake.keys[grant.resource_id]
    assert (key["disabled"], key["limit"], key["limit_remaining"]) == (True, 10.0, 10.0)


async def test_the_key_never_reaches_the_logs(
    provider: OpenRouterProvider, fake: FakeOpenRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    grant = await provider.provision(INSTANCE)
    await provider.revoke(grant.resource_id, grant.meta)

    assert "tool.openrouter.key_created" in caplog.text
    assert grant.env_value not in caplog.text
    assert fake.management_key not in caplog.text


def test_respx_base_url_matches_the_default_setting() -> None:
    assert OpenRouterSettings().base_url == BASE_URL
