"""The dashboard's pictures in headless Chromium: a day of minute samples (as the tick leader and
the claim recorders write them) drawn per template (idle, starting, claimed, the target as a step,
its reason), the queue and refill time, and the claims' warm-hit rate and latency p50/p99; and an
instance's event log, reached from the agents list, every text escaped."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.async_api import Locator, expect
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.activity import latency
from pool.models import ClaimSample, Instance, InstanceEvent, TemplateSample
from tests.pool.dashboard.browser_support import OUTPUT, browser_marks, logged_in
from tests.pool.dashboard.conftest import ADMIN_PASSWORD, Dashboard

pytestmark = browser_marks(timeout_seconds=60)

CAPPED = "capped by the idle-hours budget (40 h/day)"
HOSTILE = '<script id="evil">alert(1)</script>'


async def seed_day(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """1,440 minutes of the default template (the last two hours capped) and a claim every minute:
    warm hits except one miss in ten, latencies 0.1 s (p50) but two in a hundred take 4 s (p99)."""
    async with sessionmaker() as session, session.begin():
        now = await session.scalar(select(func.date_trunc("minute", func.now())))
        assert now is not None
        rows, claims = [], []
        for m in range(1440):
            minute = now - timedelta(minutes=1439 - m)
            capped = m >= 1320
            rows.append(
                {
                    "minute": minute,
                    "template_id": "default",
                    "idle": 3 + m % 5,
                    "starting": m % 3,
                    "claimed": 10 + m // 100,
                    "queued": 2 if 600 <= m < 610 else 0,
                    "target": 4 if capped else 6,
                    "target_reason": CAPPED if capped else "demand 0.2/s × refill p90 30 s + margin",
                    "refill_p50_seconds": 30.0 + m % 7 if m % 4 == 0 else None,
                    "refill_max_seconds": 45.0 if m % 4 == 0 else None,
                }
            )
            buckets = [0] * latency.SIZE
            buckets[latency.bucket(0.1)] += 9
            buckets[latency.bucket(4.0 if m % 5 == 0 else 0.1)] += 1
            claims.append({"minute": minute, "hits": 9, "misses": 1, "other": 0, "latency_buckets": buckets})
        await session.execute(insert(TemplateSample), rows)
        await session.execute(insert(ClaimSample), claims)
        session.add(
            Instance(id="evtinstance1", name="agent-evtinstance1", status="claimed", agent_name="Bot")
        )
        await session.flush()
        for kind, summary in (
            ("create.requested", {"templateId": "default", "version": 1}),
            ("status.changed", {"from": "starting", "to": "idle", "reason": "ready (prober)"}),
            ("claim.claimed", {"claimId": "c" * 32, "status": "claimed"}),
            ("claim.failed", {"status": "idle", "reason": HOSTILE}),
        ):
            session.add(InstanceEvent(instance_id="evtinstance1", kind=kind, actor="pool", summary=summary))


async def test_the_pictures_draw_a_day_per_template_and_of_the_claims(
    dashboard: Dashboard, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    await seed_day(sessionmaker)
    async with logged_in(dashboard.url, ADMIN_PASSWORD) as context:
        page = await context.new_page()
        await page.goto(dashboard.url + "/dashboard")
        await page.click("#pictures-link")
        await expect(page).to_have_url(dashboard.url + "/dashboard/pictures")

        section = page.locator('section.template-pictures[data-template="default"]')
        await expect(section.locator(".target")).to_have_text(f"target 4: {CAPPED}")
        await expect(section.locator(".reasons li")).to_have_count(2)
        instances = section.locator("#chart-instances-default")
        for series in ("idle", "starting", "claimed", "target"):
            await expect(instances.locator(f'polyline[data-series="{series}"]')).to_have_count(1)
        # Every minute of the day (the oldest may have just left the window if a minute turned).
        points = await instances.locator('polyline[data-series="idle"]').get_attribute("data-points")
        assert points in ("1439", "1440")
        box = await instances.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 60
        await expect(section.locator('#chart-queue-default polyline[data-series="queued"]')).to_have_count(1)
        await expect(section.locator('#chart-refill-default polyline[data-series="refill"]')).to_have_count(1)
        await expect(section.locator(".legend li")).to_contain_text(["idle", "starting", "claimed", "target"])

        claims = page.locator("#claims-pictures")
        await expect(claims.locator("#claims-day")).to_contain_text("90.0% warm hits")
        # 1,440 minutes of 9 hits, or 1,439 when a minute turned between the seeding and the page.
        answered = re.compile(r"\((12960|12951) answered from an idle instance, (1440|1439) queued")
        await expect(claims.locator("#claims-day")).to_contain_text(answered)
        await expect(claims.locator('#chart-hit-rate polyline[data-series="hits"]')).to_have_count(1)
        await expect(claims.locator('#chart-latency polyline[data-series="p50"]')).to_have_count(1)
        await expect(claims.locator('#chart-latency polyline[data-series="p99"]')).to_have_count(1)
        # p99 is drawn high above p50 all day long: two claims in a hundred took 4 s. Compared bucket by
        # bucket, leaving out the two at the window's edges: one of them holds only the minutes of the
        # seeded day still inside the window, which depends on when the test runs.
        p50 = await _heights(claims.locator('#chart-latency polyline[data-series="p50"]'))
        p99 = await _heights(claims.locator('#chart-latency polyline[data-series="p99"]'))
        shared = sorted(set(p99) & set(p50))[1:-1]
        assert len(shared) > 10
        assert all(p99[x] < p50[x] for x in shared)
        day = await claims.locator("#claims-day").inner_text()
        p99_day = float(day.split("p99 ")[1].split(" s")[0])
        assert 3.0 <= p99_day <= 5.5 and "p50 0.1" in day
        assert await page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
        await page.screenshot(path=str(OUTPUT / "pictures-01-day.png"), full_page=True)

        # An instance's events, from its row in the agents list; a hostile reason stays text.
        await page.goto(dashboard.url + "/dashboard")
        await page.click('a.events-link[href="/dashboard/instances/evtinstance1/events"]')
        await expect(page).to_have_url(dashboard.url + "/dashboard/instances/evtinstance1/events")
        rows = page.locator("table.events tbody tr")
        await expect(rows).to_have_count(4)
        await expect(rows.first).to_have_attribute("data-kind", "claim.failed")
        await expect(rows.first).to_contain_text(HOSTILE)
        await expect(page.locator("script#evil")).to_have_count(0)
        await page.screenshot(path=str(OUTPUT / "pictures-02-events.png"), full_page=True)


async def test_no_samples_yet_says_so(dashboard: Dashboard) -> None:
    async with logged_in(dashboard.url, ADMIN_PASSWORD) as context:
        page = await context.new_page()
        await page.goto(dashboard.url + "/dashboard/pictures")
        await expect(page.locator("#chart-hit-rate text.empty")).to_have_text("no samples yet")
        await expect(page.locator("section.template-pictures")).to_have_count(0)
        await expect(page.locator("main")).to_contain_text("No samples yet")


async def _heights(polyline: Locator) -> dict[float, float]:
    """Each point of an SVG polyline as x → y (a smaller y is higher on the chart)."""
    points = await polyline.get_attribute("points")
    assert points
    return {float(x): float(y) for x, y in (point.split(",") for point in points.split())}
