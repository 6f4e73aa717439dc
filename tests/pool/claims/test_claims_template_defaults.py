"""`POST /api/pool/claims` (the queue's route, the dashboard's launch) fills in what the claim left out
from its template, as `POST /api/pool/claim` does: a claim resource used to send every field's default."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from tests.fakes.fleet import FakeFleet
from tests.pool.claims.queue_support import pool_http
from tests.pool.factories import add_fleet_instances


async def test_a_claim_resource_gets_its_templates_agent_name_when_it_leaves_it_out(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        spec = {"slug": "mail", "name": "Mail", "visibility": "public", "agentName": "Postie"}
        mail = (await http.post("/api/templates", json=spec)).json()["id"]
        await add_fleet_instances(sessionmaker, fleet, 2, row={"template_id": mail})

        left_out = await http.post("/api/pool/claims", json={"templateId": mail})
        given = await http.post("/api/pool/claims", json={"templateId": mail, "agentName": "Ada"})

        assert left_out.status_code == 202 and left_out.json()["status"] == "succeeded", left_out.text
        assert left_out.json()["claim"]["agentName"] == "Postie"
        assert given.json()["claim"]["agentName"] == "Ada"
