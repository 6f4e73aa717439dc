"""The dashboard's agents list shows where a cloned agent came from (pool DB only)."""

from __future__ import annotations

import httpx

from shared.db import make_engine, make_sessionmaker
from tests.pool.dashboard.conftest import Dashboard, log_in
from tests.pool.factories import make_instance


async def test_a_cloned_agent_shows_its_parent(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    engine = make_engine(dashboard.settings.database_url)
    try:
        async with make_sessionmaker(engine).begin() as session:
            source = await make_instance(session, status="claimed", agent_name="Ada")
            await make_instance(session, status="claimed", agent_name="Ada", parent_instance=source.id)
    finally:
        await engine.dispose()
    await log_in(client)
    agents = (await client.get("/dashboard/partials/agents?group=claimed")).text
    assert agents.count("cloned from") == 1
    assert f"cloned from <code>{source.id}</code>" in agents
