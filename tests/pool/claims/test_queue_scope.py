"""Claims as resources are scoped to their caller: the dashboard's launch form (its own caller)
and the API key's callers never see each other's claims (404). And the launch form follows its
queued claim: its place and ETA, then the invite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings
from pool.main import create_app
from tests.fakes.fleet import FakeFleet
from tests.pool.claims.queue_support import enqueue
from tests.pool.conftest import AUTH
from tests.pool.dashboard.conftest import ADMIN_PASSWORD, log_in, page_csrf
from tests.pool.factories import add_fleet_instances
from tests.support import serve


async def test_claims_are_scoped_to_their_caller_and_the_launch_form_follows_its_queued_claim(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with (
        serve(create_app(make_settings(admin_password=ADMIN_PASSWORD))) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as browser,
        httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as api,
    ):
        assert (await log_in(browser)).status_code == 303
        csrf = page_csrf((await browser.get("/dashboard")).text)
        headers = {"X-CSRF-Token": csrf, "X-Requested-With": "fetch"}
        launched = await browser.post("/dashboard/launch", json={"agentName": "Queued Bot"}, headers=headers)
        assert launched.status_code == 200, launched.text
        assert 'id="queue-position">1<' in launched.text
        claim_id = launched.text.split('data-claim="')[1].split('"')[0]

        theirs = await enqueue(api)
        # Each caller sees only its own claims.
        assert (await api.get(f"/api/pool/claims/{claim_id}")).status_code == 404
        assert (await api.delete(f"/api/pool/claims/{claim_id}")).status_code == 404
        assert (await api.get(f"/api/pool/claims/{claim_id}/events")).status_code == 404
        assert (await browser.get(f"/dashboard/claims/{theirs['id']}", headers=headers)).status_code == 404

        [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)
        followed = None
        for _ in range(50):
            followed = await browser.get(f"/dashboard/claims/{claim_id}", headers=headers)
            if 'data-instance="' in followed.text:
                break
            await asyncio.sleep(0.1)
        assert followed is not None and f'data-instance="{instance_id}"' in followed.text
        assert 'id="invite-url"' in followed.text
        # The API caller's claim, queued behind the launch, is still waiting.
        assert (await api.get(f"/api/pool/claims/{theirs['id']}")).json()["position"] == 1
