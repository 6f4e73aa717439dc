"""The launch form with no idle instance free (DESIGN.md §10), in headless Chromium: the claim waits
in line, the page follows it live (its position, its ETA or that there is none yet) and shows the
invite once an idle instance serves it, without a reload and without ever showing a secret.

The pool runs over real HTTP on a fresh database without its tick; idle instances are pool rows
served by the fake fleet (real HTTP), added while the page watches. Screenshots land in
`.data/test-output/dashboard/`.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Page, Response, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.main import create_app
from tests.fakes.fleet import FakeFleet
from tests.pool.dashboard.browser_support import OUTPUT, browser_marks, logged_in
from tests.pool.dashboard.conftest import ADMIN_PASSWORD, API_KEY, SERVICES_API_KEY, dashboard_settings
from tests.pool.factories import ENCRYPTION_KEY, add_fleet_instances
from tests.support import serve

pytestmark = browser_marks(timeout_seconds=60)

# Each wait below is bounded well inside the test's own ~15 s budget: the page re-reads its claim
# every second and the pool dispatches every half second while it follows a queued claim.
SERVED_WITHIN_MS = 8_000


@dataclass
class QueuePool:
    url: str
    fleet: FakeFleet
    sessionmaker: async_sessionmaker[AsyncSession]

    def secrets(self) -> dict[str, str]:
        tokens = {f"gateway token of {iid}": agent.token for iid, agent in self.fleet.agents.items()}
        return {
            "pool_api_key": API_KEY,
            "admin_password": ADMIN_PASSWORD,
            "encryption_key": ENCRYPTION_KEY,
            "services_api_key": SERVICES_API_KEY,
            **tokens,
        }

    async def add_idle(self) -> str:
        [instance_id] = await add_fleet_instances(self.sessionmaker, self.fleet, 1)
        return instance_id


@pytest.fixture
async def queue_pool(
    pool_db_url: str, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[QueuePool]:
    # The fleet's tokens are sealed with the factories' key: the pool must open them to provision.
    settings = dashboard_settings(pool_db_url, encryption_key=ENCRYPTION_KEY)
    async with serve(create_app(settings)) as url:
        yield QueuePool(url, fleet, sessionmaker)


class Shown:
    """Every launch view the page received (the launch answer and each re-read of its claim), and
    snapshots of the whole page, to search for secrets at the end."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self._bodies: list[asyncio.Future[str]] = []
        self.snapshots: list[str] = []
        page.on("response", self._received)

    def _received(self, response: Response) -> None:
        if "/dashboard/claims/" in response.url or response.url.endswith("/dashboard/launch"):
            self._bodies.append(asyncio.ensure_future(response.text()))

    async def snapshot(self, name: str) -> None:
        self.snapshots.append(await self.page.content())
        await self.page.screenshot(path=str(OUTPUT / f"queue-{name}.png"), full_page=True)

    async def assert_no_secrets(self, secrets: dict[str, str]) -> None:
        views = [*await asyncio.gather(*self._bodies), *self.snapshots]
        assert any("data-claim=" in html for html in views), "no queued view was received"
        for name, value in secrets.items():
            assert not [html for html in views if value in html], f"{name} shown on the dashboard"


async def open_dashboard(pool: QueuePool, context: Any) -> tuple[Page, Shown]:
    page: Page = await context.new_page()
    shown = Shown(page)
    await page.goto(pool.url + "/dashboard")
    # Gone if the page reloads or navigates: the invite must arrive in this same document.
    await page.evaluate("window.sameDocument = true")
    return page, shown


async def launch(page: Page, agent_name: str) -> None:
    await page.fill("#agent-name", agent_name)
    await page.click("#launch-button")
    await expect(page.locator("#launch-result .result.queued")).to_be_visible(timeout=5_000)


async def a_reread(page: Page) -> None:
    """Wait for the page's next re-read of its queued claim (about a second apart)."""
    async with page.expect_response(lambda r: "/dashboard/claims/" in r.url, timeout=5_000) as reread:
        pass
    assert (await reread.value).status == 200


async def assert_invite(page: Page, pool: QueuePool, instance_id: str) -> None:
    qr = page.locator("#invite-qr")
    await expect(qr).to_be_visible(timeout=SERVED_WITHIN_MS)
    await expect(page.locator("#launch-result .result")).to_have_attribute("data-instance", instance_id)
    await expect(page.locator("#launch-result .queued")).to_have_count(0)
    await expect(page.locator("#launch-steps li.done")).to_have_count(3)
    invite = await page.locator("#invite-url").input_value()
    assert invite == pool.fleet.agents[instance_id].invite_url
    assert invite.startswith("https://")
    decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(await qr.screenshot())))
    assert [code.text for code in decoded] == [invite]
    assert await page.evaluate("window.sameDocument === true"), "the page reloaded"


async def test_a_launch_on_an_empty_pool_waits_in_line_then_shows_its_invite_without_a_reload(
    queue_pool: QueuePool,
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with logged_in(queue_pool.url, ADMIN_PASSWORD) as context:
        page, shown = await open_dashboard(queue_pool, context)

        await launch(page, "Queued Bot")
        await expect(page.locator("#launch-result")).to_contain_text("No warm instance is free")
        await expect(page.locator("#queue-position")).to_have_text("1")
        # Nothing has been created yet, so no refill rate is measured: the page promises no time.
        await expect(page.locator("#queue-eta")).to_have_text("no estimate yet")
        await expect(page.locator('#launch-steps [data-step="claim"]')).to_have_class("active")
        await expect(page.locator("#invite-qr")).to_have_count(0)
        # The page keeps following the claim: a re-read still shows it waiting.
        await a_reread(page)
        await expect(page.locator("#queue-position")).to_have_text("1")
        await shown.snapshot("01-queued")

        instance_id = await queue_pool.add_idle()
        await assert_invite(page, queue_pool, instance_id)
        await expect(page.locator("#launch-result")).to_contain_text("Queued Bot")
        await shown.snapshot("02-served")

        await shown.assert_no_secrets(queue_pool.secrets())


async def test_the_second_queued_launch_moves_from_position_2_to_1_when_the_first_is_served(
    queue_pool: QueuePool,
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with logged_in(queue_pool.url, ADMIN_PASSWORD) as context:
        first, first_shown = await open_dashboard(queue_pool, context)
        second, second_shown = await open_dashboard(queue_pool, context)

        await launch(first, "First Bot")
        await expect(first.locator("#queue-position")).to_have_text("1")
        await launch(second, "Second Bot")
        await expect(second.locator("#queue-position")).to_have_text("2")
        await second_shown.snapshot("03-second-in-line")

        # One idle instance: it goes to the head of the line; the second moves up, still waiting.
        served_first = await queue_pool.add_idle()
        await assert_invite(first, queue_pool, served_first)
        await expect(second.locator("#queue-position")).to_have_text("1", timeout=SERVED_WITHIN_MS)
        await expect(second.locator("#invite-qr")).to_have_count(0)
        await second_shown.snapshot("04-second-now-first")

        served_second = await queue_pool.add_idle()
        await assert_invite(second, queue_pool, served_second)
        await second_shown.snapshot("05-second-served")

        secrets = queue_pool.secrets()
        await first_shown.assert_no_secrets(secrets)
        await second_shown.assert_no_secrets(secrets)
