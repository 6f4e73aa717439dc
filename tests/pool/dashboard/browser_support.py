"""What the dashboard's browser tests share: where Chromium is, how it starts, and the rule that a
missing browser stops the run instead of skipping the tests unnoticed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext

CHROMIUM = os.environ.get("WARMPOOL_CHROMIUM", "/usr/bin/chromium")
SKIP_BROWSER = "WARMPOOL_SKIP_BROWSER_TESTS"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
OUTPUT = Path(__file__).resolve().parents[3] / ".data" / "test-output" / "dashboard"


def browser_marks(timeout_seconds: int) -> list[pytest.MarkDecorator]:
    """A browser test module's `pytestmark`. A missing browser stops the run with what to install (a
    skip would let `make test` pass with the dashboard untested, unnoticed); skipping them is a
    choice stated in the environment."""
    marks = [pytest.mark.slow, pytest.mark.timeout(timeout_seconds)]
    if not os.path.exists(CHROMIUM):
        if os.environ.get(SKIP_BROWSER) != "1":
            pytest.fail(
                f"the dashboard's browser tests need Chromium at {CHROMIUM}: install it "
                "(`apt-get install chromium` on Debian; .ci/run does) or point WARMPOOL_CHROMIUM at it; "
                f"{SKIP_BROWSER}=1 skips these tests instead",
                pytrace=False,
            )
        marks.append(pytest.mark.skip(reason=f"{SKIP_BROWSER}=1 and no Chromium at {CHROMIUM}"))
    return marks


@contextlib.asynccontextmanager
async def logged_in(base_url: str, password: str) -> AsyncIterator[BrowserContext]:
    """A headless Chromium context holding a dashboard session (its pages share the cookie)."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
            page = await context.new_page()
            await page.goto(base_url + "/dashboard/login")
            await page.fill("#secret", password)
            await page.click("button[type=submit]")
            await expect(page).to_have_url(base_url + "/dashboard")
            await page.close()
            yield context
        finally:
            await browser.close()
