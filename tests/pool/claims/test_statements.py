"""The claim of an idle instance costs what it cost before the queue: two statements on the
claims' asyncpg pool (RESERVE, then MARK_CLAIMED) and none on the ORM engine (its event-log entry
waits in memory for the recorder's next write). The no-barging
condition lives inside RESERVE, not in a statement of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.claims import db as claims_db
from pool.claims import queue_db, statements
from pool.config import Settings
from pool.main import create_app
from tests.fakes.fleet import FakeFleet
from tests.pool.claims.queue_support import BODY
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances


class CountingClaimsDb(claims_db.ClaimsDb):
    """The app's ClaimsDb, with a statement counter on every asyncpg connection it opens."""

    statements: list[str] = []

    async def _get(self) -> asyncpg.Pool:
        if self._pool is None:

            async def count(connection: asyncpg.Connection) -> None:
                connection.add_query_logger(lambda record: self.statements.append(record.query))

            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=0, max_size=self._max_size, reset=claims_db._no_reset, init=count
            )
        return self._pool


async def test_an_idle_claim_costs_two_statements(
    make_settings: Callable[..., Settings],
    fleet: FakeFleet,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pool.main.ClaimsDb", CountingClaimsDb)
    await add_fleet_instances(sessionmaker, fleet, 2)
    app = create_app(make_settings())
    orm: list[str] = []
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        engine = state["pool"]["engine"].sync_engine
        event.listen(engine, "before_cursor_execute", lambda *args: orm.append(args[2]))

        async def with_state(scope: Any, receive: Any, send: Any) -> None:
            scope["state"] = dict(state)
            await app(scope, receive, send)

        transport = httpx.ASGITransport(app=with_state)
        async with httpx.AsyncClient(transport=transport, base_url="http://pool", headers=AUTH) as client:
            # Warm up (connections, prepared statements), then count one claim alone.
            assert (await client.post("/api/pool/claim", json=BODY)).status_code == 200
            # The event log's recorder writes in the background (pool/activity/recorder.py): stop its
            # timer, so what is counted below is the claim's own cost, and its entry waits in memory.
            recorder = state["pool"]["recorder"]
            await recorder.stop()
            CountingClaimsDb.statements.clear()
            orm.clear()
            response = await client.post("/api/pool/claim", json=BODY)
            # The dispatcher's idle poll (every 2 s, nothing to do with this claim) is not counted.
            counted = [q for q in CountingClaimsDb.statements if q != queue_db.ANY_IN_QUEUE]
            during = list(orm)
            assert [e["kind"] for e in recorder._events] == ["claim.claimed"]
    assert response.status_code == 200, response.text
    assert counted == [statements.RESERVE, statements.MARK_CLAIMED]
    assert during == []
