"""The dashboard's status view in headless Chromium shows services' platforms as the tick recorded
them in `tick_state.platforms` (its name, priority, capacity, use and health word), and follows a
new recording without a reload. The view is written with the tick's own `record_tick`."""

from __future__ import annotations

from datetime import UTC, datetime

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.tick.state import FLEET, record_tick
from shared.schemas import PlatformList, PlatformView
from tests.pool.dashboard.browser_support import OUTPUT, browser_marks, logged_in
from tests.pool.dashboard.conftest import ADMIN_PASSWORD, Dashboard

pytestmark = browser_marks(timeout_seconds=60)

# The summary re-renders every two seconds; a recording shows within a few rounds.
REFRESHED_WITHIN_MS = 6_000


def view(
    name: str, priority: int, capacity: int | None, in_use: int, health: str, **more: object
) -> PlatformView:
    return PlatformView.model_validate(
        {
            "name": name,
            "provider": "railway",
            "priority": priority,
            "capacity": capacity,
            "inUse": in_use,
            "creating": 0,
            "health": health,
            **more,
        }
    )


async def record(sessionmaker: async_sessionmaker[AsyncSession], platforms: list[PlatformView]) -> None:
    """What a tick writes after reading services' `GET /platforms`."""
    now = datetime.now(UTC)
    async with sessionmaker() as session, session.begin():
        await record_tick(
            session,
            FLEET,
            leader_id="browser-test",
            started_at=now,
            duration_ms=12,
            summary={},
            error=None,
            platforms=PlatformList(observed_at=now, platforms=platforms),
        )


async def assert_row(page: Page, name: str, cells: list[str], health_class: str) -> None:
    row = page.locator(f'#platforms tr[data-platform="{name}"]')
    await expect(row.locator("td")).to_have_text(cells, timeout=REFRESHED_WITHIN_MS)
    await expect(row.locator("td").last).to_have_class(health_class)


async def test_the_status_view_shows_each_recorded_platform_with_its_health_word(
    dashboard: Dashboard, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with logged_in(dashboard.url, ADMIN_PASSWORD) as context:
        page = await context.new_page()
        await page.goto(dashboard.url + "/dashboard")
        # Before any tick recorded services' platforms, there is no table to read wrong.
        await expect(page.locator("#platforms")).to_have_count(0)
        await page.evaluate("window.sameDocument = true")

        await record(
            sessionmaker,
            [
                view("shared", 1, 90, 90, "full"),
                view(
                    "projects",
                    2,
                    None,
                    4,
                    "backing off",
                    backoffUntil="2026-11-30T12:00:30Z",
                    consecutiveFailures=3,
                    lastError="ProjectCreate: Problem processing request",
                ),
                view("spare", 3, 20, 1, "ok"),
                view("retiring", 4, 10, 2, "draining"),
            ],
        )
        # Columns: platform, provider, priority, in use, creating, capacity, health.
        await assert_row(page, "shared", ["shared", "railway", "1", "90", "0", "90", "full"], "bad")
        await assert_row(
            page,
            "projects",
            [
                "projects", "railway", "2", "4", "0", "no cap",
                "backing off until 12:00:30 UTC (3 failed)ProjectCreate: Problem processing request",
            ],
            "bad",
        )  # fmt: skip
        await assert_row(page, "spare", ["spare", "railway", "3", "1", "0", "20", "ok"], "ok")
        await assert_row(page, "retiring", ["retiring", "railway", "4", "2", "0", "10", "draining"], "bad")
        await expect(page.locator("#platforms tbody tr")).to_have_count(4)
        # On a phone the table scrolls inside its card: the page keeps its width, the health
        # column is reached by scrolling the table.
        assert await page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        health = page.locator('#platforms tr[data-platform="projects"] td').last
        await health.scroll_into_view_if_needed()
        await expect(health).to_be_in_viewport()
        await page.screenshot(path=str(OUTPUT / "platforms-01-recorded.png"), full_page=True)

        # The next tick's view (the backoff over, the full one freed up) replaces it live.
        await record(sessionmaker, [view("shared", 1, 90, 60, "ok"), view("projects", 2, None, 5, "ok")])
        await assert_row(page, "shared", ["shared", "railway", "1", "60", "0", "90", "ok"], "ok")
        await assert_row(page, "projects", ["projects", "railway", "2", "5", "0", "no cap", "ok"], "ok")
        await expect(page.locator("#platforms tbody tr")).to_have_count(2)
        assert await page.evaluate("window.sameDocument === true"), "the page reloaded"
        await page.screenshot(path=str(OUTPUT / "platforms-02-next-tick.png"), full_page=True)
