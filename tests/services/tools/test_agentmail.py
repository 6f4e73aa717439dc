from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from devtools.vendor_fakes.agentmail import FakeAgentMail
from services.tools.agentmail import (
    AgentMailAuthError,
    AgentMailProvider,
    AgentMailRejected,
    AgentMailSettings,
    AgentMailUsernameTaken,
)

INSTANCE = "abc123def456"


@pytest.fixture
def fake() -> FakeAgentMail:
    return FakeAgentMail(domains=("agentmail.to", "agents.example.com"))


@pytest.fixture
async def provider(fake: FakeAgentMail) -> AsyncIterator[AgentMailProvider]:
    settings = AgentMailSettings(api_key=fake.api_key, domain="agents.example.com")
    async with respx.mock(assert_all_called=False) as router, httpx.AsyncClient() as http:
        fake.install(router)
        yield AgentMailProvider.from_settings(settings, http)


async def test_provision_creates_an_inbox_named_after_the_instance(
    provider: AgentMailProvider, fake: FakeAgentMail
) -> None:
    grant = await provider.provision(INSTANCE)

    assert grant.resource_id == grant.env_value == f"warmpool-{INSTANCE}@agents.example.com"
    assert fake.inboxes[grant.resource_id]["client_id"] == f"warmpool-{INSTANCE}"


async def test_a_retried_provision_returns_the_same_inbox(
    provider: AgentMailProvider, fake: FakeAgentMail
) -> None:
    first = await provider.provision(INSTANCE)
    second = await provider.provision(INSTANCE)

    assert second.resource_id == first.resource_id
    assert fake.created == 1


async def test_a_create_retried_after_a_503_makes_one_inbox(
    provider: AgentMailProvider, fake: FakeAgentMail
) -> None:
    fake.failures.fail("create", 503)

    grant = await provider.provision(INSTANCE)

    assert list(fake.inboxes) == [grant.resource_id]


async def test_a_username_taken_by_someone_else_gets_another_username(
    provider: AgentMailProvider, fake: FakeAgentMail
) -> None:
    fake.taken_usernames.add(f"warmpool-{INSTANCE}")

    grant = await provider.provision(INSTANCE)

    assert grant.resource_id.startswith(f"warmpool-{INSTANCE}-")
    assert fake.inboxes[grant.resource_id]["client_id"] == f"warmpool-{INSTANCE}"


async def test_username_taken_every_time_is_a_clear_permanent_error(fake: FakeAgentMail) -> None:
    settings = AgentMailSettings(api_key=fake.api_key, username_attempts=0)
    fake.taken_usernames.add(f"warmpool-{INSTANCE}")
    async with respx.mock(assert_all_called=False) as router, httpx.AsyncClient() as http:
        fake.install(router)
        with pytest.raises(AgentMailUsernameTaken, match="resource_taken"):
            await AgentMailProvider.from_settings(settings, http).provision(INSTANCE)


async def test_an_unverified_domain_is_rejected(fake: FakeAgentMail) -> None:
    settings = AgentMailSettings(api_key=fake.api_key, domain="not-ours.example")
    async with respx.mock(assert_all_called=False) as router, httpx.AsyncClient() as http:
        fake.install(router)
        with pytest.raises(AgentMailRejected, match="422"):
            await AgentMailProvider.from_settings(settings, http).provision(INSTANCE)


async def test_a_wrong_api_key_is_an_auth_error(fake: FakeAgentMail) -> None:
    async with respx.mock(assert_all_called=False) as router, httpx.AsyncClient() as http:
        fake.install(router)
        provider = AgentMailProvider.from_settings(AgentMailSettings(api_key="am_wrong"), http)
        with pytest.raises(AgentMailAuthError):
            await provider.provision(INSTANCE)


async def test_revoke_deletes_and_already_gone_is_success(
    provider: AgentMailProvider, fake: FakeAgentMail
) -> None:
    grant = await provider.provision(INSTANCE)

    await provider.revoke(grant.resource_id, grant.meta)
    await provider.revoke(grant.resource_id, grant.meta)

    assert (fake.inboxes, fake.deleted) == ({}, 1)


async def test_inventory_follows_page_tokens_and_keeps_our_inboxes(
    provider: AgentMailProvider, fake: FakeAgentMail
) -> None:
    ours = {f"{n:012d}" for n in range(130)}
    for instance_id in ours:
        fake.add_inbox(f"warmpool-{instance_id}", client_id=f"warmpool-{instance_id}")
    fake.add_inbox("human", client_id=None)

    items = await provider.inventory()

    assert {item.instance_id for item in items} == ours
