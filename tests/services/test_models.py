"""Constraints and indexes of services' tables, as the Alembic migrations build them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.models import InstanceInfra
from shared.auth import hash_token
from shared.db import make_engine, make_sessionmaker


@pytest.fixture
async def sessionmaker(services_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(services_db_url, pool_size=1)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def row(instance_id: str, token_hash: str | None) -> InstanceInfra:
    return InstanceInfra(
        instance_id=instance_id, name=instance_id, provider="local", services_token_hash=token_hash
    )


async def test_two_instances_cannot_share_a_services_token_hash_but_many_may_have_none(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        session.add_all(
            [row("aaaaaaaaaaa1", hash_token("t1")), row("aaaaaaaaaaa2", None), row("aaaaaaaaaaa3", None)]
        )
    with pytest.raises(IntegrityError, match="uq_instance_infra_services_token_hash"):
        async with sessionmaker.begin() as session:
            session.add(row("aaaaaaaaaaa4", hash_token("t1")))


async def test_finding_an_instance_by_its_token_hash_uses_the_index_not_a_scan(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async with sessionmaker.begin() as session:
        await session.execute(
            text(
                "INSERT INTO instance_infra (instance_id, name, provider, services_token_hash) "
                "SELECT lpad(g::text, 12, '0'), 'n', 'local', md5(g::text) FROM generate_series(1, 2000) g"
            )
        )
        await session.execute(text("ANALYZE instance_infra"))
    # The query services.auth.tool_caller runs for every call an instance makes.
    query = select(InstanceInfra.instance_id).where(InstanceInfra.services_token_hash == "x")
    async with sessionmaker() as session:
        compiled = query.compile(session.bind, compile_kwargs={"literal_binds": True})
        plan = "\n".join(await session.scalars(text(f"EXPLAIN {compiled}")))

    assert "uq_instance_infra_services_token_hash" in plan and "Seq Scan" not in plan, plan
