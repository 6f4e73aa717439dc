from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.pooled import service as pooled
from services.pooled.service import PooledProvider, PoolExhausted
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker
from shared.errors import Conflict

BOX = SecretBox("test-encryption-key")


@pytest.fixture
async def sessionmaker(services_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(services_db_url, pool_size=25)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def add_wallets(sessionmaker: async_sessionmaker[AsyncSession], count: int) -> None:
    async with sessionmaker.begin() as session:
        for n in range(count):
            await pooled.add_resource(
                session, box=BOX, kind="bankr", label=f"wallet {n}", value=f"bk_secret_{n}"
            )


async def test_values_are_stored_encrypted(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await add_wallets(sessionmaker, 1)

    async with sessionmaker() as session:
        [row] = await pooled.list_resources(session, kind="bankr")

    assert "bk_secret_0" not in row.value
    assert BOX.decrypt(row.value) == "bk_secret_0"


async def test_each_instance_gets_its_own_resource_and_keeps_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_wallets(sessionmaker, 3)
    provider = PooledProvider("bankr", "BANKR_API_KEY", sessionmaker, BOX)

    first = await provider.provision("aaaaaaaaaaaa")
    again = await provider.provision("aaaaaaaaaaaa")
    second = await provider.provision("bbbbbbbbbbbb")

    assert again.resource_id == first.resource_id
    assert second.resource_id != first.resource_id
    assert {first.env_value, second.env_value} <= {"bk_secret_0", "bk_secret_1", "bk_secret_2"}


async def test_twenty_concurrent_provisions_take_twenty_distinct_resources(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_wallets(sessionmaker, 20)
    provider = PooledProvider("bankr", "BANKR_API_KEY", sessionmaker, BOX)

    grants = await asyncio.gather(*(provider.provision(f"{n:012d}") for n in range(20)))

    assert len({grant.resource_id for grant in grants}) == 20


async def test_concurrent_provisions_for_one_instance_take_one_resource(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_wallets(sessionmaker, 5)
    provider = PooledProvider("bankr", "BANKR_API_KEY", sessionmaker, BOX)

    grants = await asyncio.gather(*(provider.provision("aaaaaaaaaaaa") for _ in range(10)))

    assert len({grant.resource_id for grant in grants}) == 1
    async with sessionmaker() as session:
        free = [row for row in await pooled.list_resources(session, kind="bankr") if row.instance_id is None]
        assert len(free) == 4


async def test_an_empty_pool_is_a_clear_transient_error(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    provider = PooledProvider("bankr", "BANKR_API_KEY", sessionmaker, BOX)

    with pytest.raises(PoolExhausted, match="operator must add"):
        await provider.provision("aaaaaaaaaaaa")


async def test_revoke_returns_the_resource_to_the_pool(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await add_wallets(sessionmaker, 1)
    provider = PooledProvider("bankr", "BANKR_API_KEY", sessionmaker, BOX)
    grant = await provider.provision("aaaaaaaaaaaa")

    await provider.revoke(grant.resource_id, grant.meta)
    await provider.revoke(grant.resource_id, grant.meta)
    reused = await provider.provision("bbbbbbbbbbbb")

    assert reused.resource_id == grant.resource_id


async def test_an_assigned_resource_cannot_be_removed(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    await add_wallets(sessionmaker, 1)
    grant = await PooledProvider("bankr", "BANKR_API_KEY", sessionmaker, BOX).provision("aaaaaaaaaaaa")

    async with sessionmaker.begin() as session:
        with pytest.raises(Conflict, match="assigned to aaaaaaaaaaaa"):
            await pooled.remove_resource(session, resource_id=int(grant.resource_id))


async def test_adding_the_same_reference_twice_is_a_conflict(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        await pooled.add_resource(session, box=BOX, kind="telnyx", label="n", value="+1", resource_ref="42")
        with pytest.raises(Conflict):
            await pooled.add_resource(
                session, box=BOX, kind="telnyx", label="n", value="+1", resource_ref="42"
            )
