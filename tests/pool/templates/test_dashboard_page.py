"""The dashboard's templates list (live templates, their current version and instance counts) and a
template's own page."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.main import create_app
from tests.pool.dashboard.conftest import API_KEY, dashboard_settings, log_in
from tests.pool.factories import make_instance
from tests.support import serve

BEARER = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
async def browser(pool_db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(dashboard_settings(pool_db_url))) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10.0) as http:
            yield http


async def test_the_templates_page_lists_templates_and_their_current_version(
    browser: httpx.AsyncClient,
) -> None:
    body = {"slug": "helper", "name": "Helper <b>", "owner": "acme", "env": {"REGION": "eu", "MODE": "x"}}
    created = (await browser.post("/api/templates", json=body, headers=BEARER)).json()
    changed = {"model": "openai/gpt-4o", "rollout": {"strategy": "canary", "count": 2}}
    await browser.patch(f"/api/templates/{created['id']}", json=changed, headers=BEARER)
    archived = {"slug": "gone", "name": "Gone", "owner": "acme"}
    gone = (await browser.post("/api/templates", json=archived, headers=BEARER)).json()
    await browser.post(f"/api/templates/{gone['id']}/archive", headers=BEARER)

    # Without a session the page sends the browser to log in.
    assert (await browser.get("/dashboard/templates")).headers["location"] == "/dashboard/login"
    await log_in(browser)
    assert 'href="/dashboard/templates"' in (await browser.get("/dashboard")).text
    page = await browser.get("/dashboard/templates")
    assert page.status_code == 200
    html = page.text
    assert '<tr data-template="default">' in html
    row = html.split(f'<tr data-template="{created["id"]}">')[1].split("</tr>")[0]
    assert "Helper &lt;b&gt;" in row and "v2" in row and "canary" in row and "deployment&#39;s" in row
    assert gone["id"] not in html
    # Archived ones on request, marked.
    with_archived = (await browser.get("/dashboard/templates?archived=true")).text
    assert f'<tr data-template="{gone["id"]}" class="archived">' in with_archived

    # The template's own page: its current version's fields, env values escaped.
    detail = (await browser.get(f"/dashboard/templates/{created['id']}")).text
    assert "openai/gpt-4o" in detail and "MODE=x\nREGION=eu" in detail
    assert "canary (count 2, windowSeconds 600)" in detail
    # The rollout the edit started, as the status API reports it.
    assert '<p class="meta" id="rollout">Rollout v1 → v2 (canary): <strong class="">canary</strong>' in detail
    assert '<small data-rollout="canary">canary</small>' in row
    missing = await browser.get("/dashboard/templates/tpl_000000000000")
    assert missing.status_code == 404 and "No template tpl_000000000000." in missing.text


async def test_the_templates_page_counts_each_templates_instances(
    browser: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    body = {"slug": "counted", "name": "Counted"}
    created = (await browser.post("/api/templates", json=body, headers=BEARER)).json()
    await browser.patch(f"/api/templates/{created['id']}", json={"model": "m/2"}, headers=BEARER)
    async with sessionmaker() as session, session.begin():
        for status, version in [("idle", 1), ("idle", 2), ("claimed", 2), ("pending_acceptance", 2),
                                ("creating", 2), ("dead", 1)]:  # fmt: skip
            await make_instance(session, status=status, template_id=created["id"], template_version=version)
        await make_instance(session, status="idle")  # the default template's

    await log_in(browser)
    html = (await browser.get("/dashboard/templates")).text
    row = html.split(f'<tr data-template="{created["id"]}">')[1].split("</tr>")[0]
    default_row = html.split('<tr data-template="default">')[1].split("</tr>")[0]

    assert '<td data-count="idle">2</td>' in row and '<td data-count="claimed">2</td>' in row
    assert '<td data-count="starting">1</td>' in row
    assert '<td data-count="idle">1</td>' in default_row and '<td data-count="claimed">0</td>' in default_row
    detail = (await browser.get(f"/dashboard/templates/{created['id']}")).text
    assert '<span class="n" id="count-idle">2</span>' in detail
    assert '<span class="n" id="count-claimed">2</span>' in detail
    # The deployment's POOL_MIN_IDLE (2) where the template sets no minIdle.
    assert '<span class="n" id="count-target">2</span>' in detail
    assert "Idle by version: v1 1, v2 1" in detail
