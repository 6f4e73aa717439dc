"""The dashboard's templates page lists live templates and their current version, read-only."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from pool.main import create_app
from tests.pool.dashboard.conftest import API_KEY, dashboard_settings, log_in
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
    assert "Helper &lt;b&gt;" in row and "v2" in row and "openai/gpt-4o" in row and "canary" in row
    # Env names, never values; the deployment's settings where the template leaves them out.
    assert "MODE, REGION" in row and "eu" not in row and "deployment&#39;s" in row
    assert gone["id"] not in html
