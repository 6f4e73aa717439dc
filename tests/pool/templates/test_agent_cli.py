"""`poolctl templates sync`, `poolctl sync|upgrade|agents` as operators run them: a separate process
against the pool over real HTTP, the agents reference runtimes over real HTTP."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.models import Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.factories import add_fleet_instances
from tests.pool.templates.agents_support import add_agent, bind, runtime
from tests.pool.test_cli import pool_url, poolctl

__all__ = ["pool_url"]


async def test_sync_a_template_and_one_agent(
    pool_url: str, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession], tmp_path: Path
) -> None:
    created = await poolctl(
        "templates", "create", "helper", "--name", "Helper", "--instructions", "Be kind.", url=pool_url
    )
    template_id = created.out.split()[1]
    async with runtime(tmp_path) as agent:
        await bind(agent.url, agent.token)
        agent_id = await add_agent(sessionmaker, url=agent.url, token=agent.token, template_id=template_id)
        old = fleet.add("oldruntime03")
        await bind(fleet.url("oldruntime03"), old.token)
        await add_agent(
            sessionmaker,
            url=fleet.url("oldruntime03"),
            token=old.token,
            template_id=template_id,
            instance_id="oldruntime03",
        )
        await poolctl("templates", "update", template_id, "--instructions", "Be brief.", url=pool_url)

        synced = await poolctl("templates", "sync", template_id, url=pool_url)
        one = await poolctl("sync", agent_id, url=pool_url)
        refused = await poolctl("sync", "oldruntime03", url=pool_url)
        instructions = agent.binding()["instructions"]

    assert synced.code == 0, synced.err
    assert "synced 1, skipped 1, failed 0 (version 2)" in synced.out
    assert "lacks the 'instructions' capability" in synced.out
    assert instructions == "Be brief."
    assert one.code == 0 and f"synced {agent_id}" in one.out, one.err
    assert refused.code == 1 and "capability" in refused.err


async def test_a_template_sync_with_an_agent_down_exits_1(
    pool_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    created = await poolctl(
        "templates", "create", "helper", "--name", "H", "--instructions", "x", url=pool_url
    )
    template_id = created.out.split()[1]
    await add_agent(sessionmaker, url="http://127.0.0.1:9", token="t", template_id=template_id)
    result = await poolctl("templates", "sync", template_id, url=pool_url)
    assert result.code == 1
    assert "1 agent(s) did not take the instructions" in result.err


async def test_agents_of_an_owner_and_an_upgrade_refused(
    pool_url: str, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 2)
    claimed = await poolctl("claim", "--name", "Ada", "--instructions", "x", url=pool_url)
    assert claimed.code == 0, claimed.err
    agent_id = claimed.out.split()[2]
    async with sessionmaker() as session, session.begin():
        await session.execute(update(Instance).where(Instance.id == agent_id).values(owner_id="user:1"))

    mine = await poolctl("agents", "--owner", "user:1", url=pool_url)
    nobody = await poolctl("agents", "--owner", "user:2", url=pool_url)
    bad = await poolctl("agents", "--owner", "no spaces", url=pool_url)
    current = await poolctl("upgrade", agent_id, url=pool_url)

    assert mine.code == 0 and agent_id in mine.out and "user:1" in mine.out, mine.err
    assert nobody.code == 0 and agent_id not in nobody.out
    assert bad.code == 1 and "ownerId" in bad.err
    assert current.code == 1 and "already on version 1" in current.err
