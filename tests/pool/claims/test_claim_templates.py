"""A claim is served from its template's pool (DESIGN.md §11): `templateId` or the original's
`runtime` (a slug) picks the template, its newest version first; an unknown, another owner's
private or an archived template is a clear 4xx with nothing claimed; a queued claim waits in its
template's queue and is never handed another template's instance."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.models import Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.claims.queue_support import BODY, pool_http
from tests.pool.factories import add_fleet_instances


async def _template(http: httpx.AsyncClient, **spec: Any) -> str:
    created = await http.post("/api/templates", json={"name": spec["slug"].title(), **spec})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        return {row.id: row.status for row in (await session.scalars(select(Instance))).all()}


async def test_claims_pick_their_template_newest_version_first(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        mail = await _template(http, slug="mail", visibility="public", agentName="Postie")
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        [old] = await add_fleet_instances(
            sessionmaker, fleet, 1, row={"template_id": mail, "template_version": 1, "created_at": long_ago}
        )
        [new] = await add_fleet_instances(
            sessionmaker, fleet, 1, row={"template_id": mail, "template_version": 2}
        )
        [plain] = await add_fleet_instances(sessionmaker, fleet, 1)

        first = await http.post("/api/pool/claim", json={"templateId": mail})
        assert first.status_code == 200, first.text
        # The newest version goes first, though the old one is an hour older.
        assert first.json()["instanceId"] == new
        # The template's agent name fills in what the claim left out.
        assert first.json()["agentName"] == "Postie"
        by_slug = await http.post("/api/pool/claim", json={"runtime": "mail", "agentName": "Ada"})
        assert (by_slug.json()["instanceId"], by_slug.json()["agentName"]) == (old, "Ada")
        # A runtime the pool has no template for is served from the default template.
        unknown_runtime = await http.post("/api/pool/claim", json={"runtime": "openclaw"})
        assert unknown_runtime.json()["instanceId"] == plain


async def test_unknown_private_and_archived_templates_are_refused_and_nothing_is_claimed(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        private = await _template(http, slug="secret", owner="acme", visibility="private")
        retired = await _template(http, slug="retired", visibility="public")
        for template in (private, retired):
            await add_fleet_instances(sessionmaker, fleet, 1, row={"template_id": template})
        assert (await http.post(f"/api/templates/{retired}/archive")).status_code == 200

        unknown = await http.post("/api/pool/claim", json={**BODY, "templateId": "tpl_nope"})
        theirs = await http.post("/api/pool/claim", json={**BODY, "templateId": private, "ownerId": "bob"})
        archived = await http.post("/api/pool/claim", json={**BODY, "templateId": retired})
        queued = await http.post("/api/pool/claims", json={**BODY, "templateId": "tpl_nope"})

        assert (unknown.status_code, unknown.json()["error"]) == (404, "No template tpl_nope.")
        # Another owner's private template is as unknown as one that does not exist.
        assert (theirs.status_code, theirs.json()["error"]) == (404, f"No template {private}.")
        assert archived.status_code == 409, archived.text
        assert "archived" in archived.json()["error"]
        assert queued.status_code == 404, queued.text
        assert set((await _statuses(sessionmaker)).values()) == {"idle"}

        # Its owner may claim it.
        mine = await http.post("/api/pool/claim", json={**BODY, "templateId": private, "ownerId": "acme"})
        assert mine.status_code == 200, mine.text


async def test_a_queued_claim_waits_for_its_own_templates_instance(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with pool_http(make_settings()) as http:
        mail = await _template(http, slug="mail", visibility="public")
        queued = await http.post("/api/pool/claims", json={**BODY, "templateId": mail})
        assert queued.status_code == 202 and queued.json()["status"] == "queued", queued.text
        claim_id = queued.json()["id"]
        # An idle instance of another template does not serve it, and a claim of that other
        # template is not held back by this queue (no barging is per template).
        [plain] = await add_fleet_instances(sessionmaker, fleet, 1)
        await asyncio.sleep(1.5)
        assert (await http.get(f"/api/pool/claims/{claim_id}")).json()["status"] == "queued"
        other = await http.post("/api/pool/claim", json=BODY)
        assert other.json()["instanceId"] == plain

        [mine] = await add_fleet_instances(sessionmaker, fleet, 1, row={"template_id": mail})
        for _ in range(100):
            ticket = (await http.get(f"/api/pool/claims/{claim_id}")).json()
            if ticket["status"] == "succeeded":
                break
            await asyncio.sleep(0.1)
        assert ticket["status"] == "succeeded", ticket
        assert ticket["claim"]["instanceId"] == mine
