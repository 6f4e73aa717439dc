"""Every dashboard page, partial and asset, crawled as a logged-in operator, holds no secret."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx

from pool.dashboard.service import GROUPS
from pool.models import Instance
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker
from tests.pool.dashboard.conftest import (
    ADMIN_PASSWORD,
    API_KEY,
    ENCRYPTION_KEY,
    SERVICES_API_KEY,
    Dashboard,
    log_in,
)

GATEWAY_TOKENS = {
    "idleinstance": "pool_gw_idle_instance_token_abcdefgh1234",
    "claimedinsta": "pool_gw_claimed_instance_token_ijkl5678",
    "crashedinsta": "pool_gw_crashed_instance_token_mnop9012",
}
LINK = re.compile(r'(?:href|src)="([^"]+)"')


async def seed(dashboard: Dashboard) -> list[str]:
    box = SecretBox(ENCRYPTION_KEY)
    engine = make_engine(dashboard.settings.database_url, pool_size=1)
    ciphertexts = []
    try:
        async with make_sessionmaker(engine)() as session, session.begin():
            for (instance_id, token), status in zip(
                GATEWAY_TOKENS.items(), ("idle", "claimed", "crashed"), strict=True
            ):
                encrypted = box.encrypt(token)
                ciphertexts.append(encrypted)
                session.add(
                    Instance(
                        id=instance_id,
                        name=f"agent-{instance_id}",
                        url=f"http://127.0.0.1:9/{instance_id}",
                        status=status,
                        agent_name="Bot" if status != "idle" else None,
                        invite_url="https://convos.local/invite/x" if status != "idle" else None,
                        instructions="secret plans" if status != "idle" else None,
                        gateway_token_enc=encrypted,
                        last_error="probe failed" if status == "crashed" else None,
                    )
                )
    finally:
        await engine.dispose()
    return ciphertexts


async def crawl(client: httpx.AsyncClient, start: list[str]) -> dict[str, str]:
    """GET every same-site /dashboard link reachable from the start pages."""
    pages: dict[str, str] = {}
    queue = list(start)
    while queue:
        path = queue.pop()
        if path in pages:
            continue
        response = await client.get(path, headers={"X-Requested-With": "fetch"})
        assert response.status_code == 200, (path, response.status_code)
        pages[path] = response.text
        for link in LINK.findall(response.text):
            target = urlsplit(urljoin(path, link))
            if not target.netloc and target.path.startswith("/dashboard"):
                queue.append(target.path)
    return pages


async def test_no_page_or_asset_contains_a_secret(dashboard: Dashboard, client: httpx.AsyncClient) -> None:
    ciphertexts = await seed(dashboard)
    login_page = (await client.get("/dashboard/login")).text
    await log_in(client)
    partials = [f"/dashboard/partials/agents?group={group}" for group in GROUPS]
    pages = await crawl(client, ["/dashboard", "/dashboard/partials/summary", *partials])
    pages["/dashboard/login"] = login_page
    # The crawl found the assets and the rows, so the check below looked at real content.
    assert {"/dashboard/static/app.js", "/dashboard/static/style.css"} <= set(pages)
    assert "claimedinsta" in pages["/dashboard"] and "crashedinsta" in pages["/dashboard"]
    assert {"/dashboard/pictures", "/dashboard/instances/claimedinsta/events"} <= set(pages)
    secrets = [
        API_KEY,
        ADMIN_PASSWORD,
        ENCRYPTION_KEY,
        SERVICES_API_KEY,
        *GATEWAY_TOKENS.values(),
        *ciphertexts,
    ]
    leaks = {path: [s[:12] for s in secrets if s in text] for path, text in pages.items()}
    assert {path: found for path, found in leaks.items() if found} == {}
