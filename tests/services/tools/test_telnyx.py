from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from devtools.vendor_fakes.telnyx import FakeTelnyx
from services.pooled import service as pooled
from services.tools.telnyx import TelnyxProvider, TelnyxSettings
from services.tools.telnyx_client import TelnyxNotYetThere
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker

BOX = SecretBox("test-encryption-key")
PROFILE = "4001767e-ce0f-4cae-9d5f-0d5e636e7809"
INSTANCE = "abc123def456"


@pytest.fixture
async def sessionmaker(services_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(services_db_url, pool_size=10)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def settings(fake: FakeTelnyx, **overrides: Any) -> TelnyxSettings:
    values: dict[str, Any] = {
        "api_key": fake.api_key,
        "messaging_profile_id": PROFILE,
        "order_poll_seconds": 0.01,
        "not_found_backoff_seconds": 0.01,
    }
    return TelnyxSettings(**(values | overrides))


@pytest.fixture
async def make(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[Any]:
    async with respx.mock(assert_all_called=False) as router, httpx.AsyncClient() as http:

        def build(fake: FakeTelnyx, **overrides: Any) -> TelnyxProvider:
            fake.install(router)
            return TelnyxProvider.from_settings(settings(fake, **overrides), http, sessionmaker, BOX)

        yield build


async def test_provision_buys_a_number_waits_for_the_order_and_assigns_the_profile(make: Any) -> None:
    fake = FakeTelnyx(order_polls=3)
    provider = make(fake)

    grant = await provider.provision(INSTANCE)

    number = fake.numbers[grant.resource_id]
    assert grant.env_value == number["phone_number"]
    assert (number["status"], number["messaging_profile_id"]) == ("active", PROFILE)
    assert number["customer_reference"] == f"warmpool-{INSTANCE}"


async def test_a_number_that_404s_after_purchase_is_retried_until_it_appears(make: Any) -> None:
    fake = FakeTelnyx(hidden_lookups=3)
    grant = await make(fake).provision(INSTANCE)

    assert fake.numbers[grant.resource_id]["messaging_profile_id"] == PROFILE


async def test_a_number_that_never_appears_is_a_bounded_transient_failure(make: Any) -> None:
    fake = FakeTelnyx(hidden_lookups=100)
    provider = make(fake, not_found_attempts=3)

    with pytest.raises(TelnyxNotYetThere):
        await provider.provision(INSTANCE)


async def test_concurrent_provisions_never_race_for_one_number(make: Any) -> None:
    fake = FakeTelnyx()
    provider = make(fake)

    grants = await asyncio.gather(*(provider.provision(f"{n:012d}") for n in range(8)))

    assert len({grant.env_value for grant in grants}) == 8
    assert fake.failed_orders == 0
    assert fake.created == 8


async def test_release_mode_releases_the_number_and_already_gone_is_success(make: Any) -> None:
    fake = FakeTelnyx()
    provider = make(fake)
    grant = await provider.provision(INSTANCE)

    await provider.revoke(grant.resource_id, grant.meta)
    await provider.revoke(grant.resource_id, grant.meta)

    assert (fake.numbers, fake.deleted) == ({}, 1)


async def test_recycle_mode_parks_the_number_and_the_next_instance_reuses_it(
    make: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    fake = FakeTelnyx()
    provider = make(fake, release_mode="recycle")
    grant = await provider.provision(INSTANCE)

    await provider.revoke(grant.resource_id, grant.meta)
    reused = await provider.provision("zzzzzzzzzzzz")

    assert (reused.resource_id, reused.env_value) == (grant.resource_id, grant.env_value)
    assert (fake.created, fake.deleted) == (1, 0)
    async with sessionmaker() as session:
        free = [row for row in await pooled.list_resources(session, kind="telnyx") if row.instance_id is None]
        assert len(free) == 0


async def test_inventory_lists_our_numbers_but_not_parked_or_foreign_ones(make: Any) -> None:
    fake = FakeTelnyx()
    provider = make(fake, release_mode="recycle")
    kept = await provider.provision(INSTANCE)
    parked = await provider.provision("zzzzzzzzzzzz")
    await provider.revoke(parked.resource_id, parked.meta)
    fake.add_number("+13125550000", customer_reference=None)

    items = await provider.inventory()

    assert [(item.resource_id, item.instance_id) for item in items] == [(kept.resource_id, INSTANCE)]


async def test_a_pooled_number_without_its_telnyx_id_is_handed_out_and_returned(
    make: Any, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    fake = FakeTelnyx()
    provider = make(fake)  # release mode: bought numbers are released, pooled ones go back
    async with sessionmaker() as session, session.begin():
        await pooled.add_resource(session, box=BOX, kind="telnyx", label="front desk", value="+13125550101")

    grant = await provider.provision(INSTANCE)
    await provider.revoke(grant.resource_id, grant.meta)
    again = await provider.provision("zzzzzzzzzzzz")

    assert grant.env_value == again.env_value == "+13125550101"
    assert (fake.created, fake.deleted) == (0, 0)  # nothing bought, nothing released
    async with sessionmaker() as session:
        rows = await pooled.list_resources(session, kind="telnyx")
    assert [(row.label, row.instance_id) for row in rows] == [("front desk", "zzzzzzzzzzzz")]
