"""The dashboard in headless Debian Chromium (Playwright) against a running system: services with
the local provider (real runtime processes) and the pool with its tick, both over real HTTP.

Screenshots of each step land in `.data/test-output/dashboard/`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import zxingcpp
from PIL import Image

from pool.config import Settings as PoolSettings
from pool.main import create_app as create_pool_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.pool.dashboard.browser_support import CHROMIUM, CHROMIUM_ARGS, OUTPUT, browser_marks
from tests.support import free_port, serve

SECRETS = {
    "pool_api_key": "pool_sk_browser_test_api_key_5f1e2d3c4b",
    "admin_password": "browser-test-admin-password-77",
    "pool_encryption_key": "browser-test-pool-encryption-key-01",
    "services_api_key": "services_sk_browser_test_services_key_99",
    "services_encryption_key": "browser-test-services-encryption-key-02",
}

pytestmark = browser_marks(timeout_seconds=300)


@dataclass
class System:
    url: str
    instances_dir: Path

    def gateway_tokens(self) -> list[str]:
        tokens = []
        for env_file in self.instances_dir.glob("*/env.json"):
            env = json.loads(env_file.read_text())
            tokens += [v for k, v in env.items() if "TOKEN" in k and isinstance(v, str) and v]
        return tokens

    def kill_runtime(self, instance_id: str) -> None:
        info = json.loads((self.instances_dir / instance_id / "process.json").read_text())
        os.killpg(info["pid"], signal.SIGKILL)


@pytest.fixture
async def system(pool_db_url: str, services_db_url: str, tmp_path: Path) -> AsyncIterator[System]:
    instances_dir = tmp_path / "instances"
    pool_port, services_port = free_port(), free_port()
    services_settings = ServicesSettings(
        environment="test",
        database_url=services_db_url,
        api_key=SECRETS["services_api_key"],
        encryption_key=SECRETS["services_encryption_key"],
        port=services_port,
        pool_url=f"http://127.0.0.1:{pool_port}",
        local_data_dir=str(instances_dir),
        probe_timeout_seconds=1.0,
        local_stop_grace_seconds=2.0,
    )
    pool_settings = PoolSettings(
        environment="test",
        database_url=pool_db_url,
        port=pool_port,
        api_key=SECRETS["pool_api_key"],
        admin_password=SECRETS["admin_password"],
        encryption_key=SECRETS["pool_encryption_key"],
        services_url=f"http://127.0.0.1:{services_port}",
        services_api_key=SECRETS["services_api_key"],
        min_idle=2,
        max_total=8,
        tick_interval_seconds=1.0,
        starting_probe_interval_seconds=0.3,
        failed_probes_for_death=2,
    )
    try:
        async with (
            serve(create_services_app(services_settings), port=services_port),
            serve(create_pool_app(pool_settings), port=pool_port) as pool_url,
        ):
            yield System(pool_url, instances_dir)
    finally:
        for record in instances_dir.glob("*/process.json"):
            with contextlib.suppress(psutil.Error, OSError, ValueError, KeyError):
                info = json.loads(record.read_text())
                if abs(psutil.Process(info["pid"]).create_time() - info["create_time"]) < 0.05:
                    os.killpg(info["pid"], signal.SIGKILL)


def assert_no_secrets(html: str, system: System) -> None:
    for name, value in SECRETS.items():
        assert value not in html, f"{name} leaked into a page"
    for token in system.gateway_tokens():
        assert token not in html, "an instance token leaked into a page"


async def until(check: Callable[[], Awaitable[object]], timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.3)


async def test_operator_logs_in_launches_kills_dismisses_and_logs_out(system: System) -> None:
    from playwright.async_api import async_playwright, expect

    OUTPUT.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            seen: list[str] = []

            async def shot(name: str) -> None:
                seen.append(await page.content())
                await page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)

            # 1. Not logged in: the dashboard sends us to the login form.
            await page.goto(system.url + "/dashboard")
            await expect(page).to_have_url(system.url + "/dashboard/login")
            await shot("01-login")
            await page.fill("#secret", "wrong")
            await page.click("button[type=submit]")
            await expect(page.locator("#login-error")).to_have_text("Wrong key or password.")
            await page.fill("#secret", SECRETS["admin_password"])
            await page.click("button[type=submit]")
            await expect(page).to_have_url(system.url + "/dashboard")
            await shot("02-logged-in")

            # 2. Live counts reach the target without a reload; the page fits a phone's width.
            await expect(page.locator("#target-reached")).to_be_visible(timeout=60_000)
            await expect(page.locator("#idle-now")).to_have_text("2")
            overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0
            await shot("03-target-reached")

            # 3. Launch: steps, then the invite URL and a QR image that decodes to it.
            await page.fill("#agent-name", "Browser Bot")
            await page.fill("#instructions", "Greet everyone.")
            await page.click("#launch-button")
            qr = page.locator("#invite-qr")
            await expect(qr).to_be_visible(timeout=30_000)
            await expect(page.locator("#launch-steps li.done")).to_have_count(3)
            invite = await page.locator("#invite-url").input_value()
            assert invite.startswith("https://")
            decoded = zxingcpp.read_barcodes(Image.open(io.BytesIO(await qr.screenshot())))
            assert [code.text for code in decoded] == [invite]
            instance_id = await page.locator(".result").get_attribute("data-instance")
            assert instance_id
            await shot("04-launched")

            # 4. Kill it from the agents list (a confirmation dialog is accepted).
            row = page.locator(f'tr[data-id="{instance_id}"]')
            await expect(row).to_have_attribute("data-status", "claimed", timeout=10_000)
            await row.locator('button[data-action="kill"]').click()
            await expect(row).to_have_count(0, timeout=30_000)
            await shot("05-killed")

            # 5. A claimed instance crashes: it shows up as crashed and is dismissed.
            await expect(page.locator("#target-reached")).to_be_visible(timeout=60_000)
            await page.fill("#agent-name", "Doomed Bot")
            await page.click("#launch-button")
            await expect(page.locator(".result")).to_have_count(1, timeout=30_000)
            doomed = await page.locator(".result").get_attribute("data-instance")
            assert doomed and doomed != instance_id
            system.kill_runtime(doomed)
            await page.select_option("#agent-filter", "crashed")
            crashed = page.locator(f'tr[data-id="{doomed}"][data-status="crashed"]')
            await expect(crashed).to_have_count(1, timeout=60_000)
            await shot("06-crashed")
            await crashed.locator('button[data-action="dismiss"]').click()
            await expect(page.locator(f'tr[data-id="{doomed}"]')).to_have_count(0, timeout=30_000)
            await shot("07-dismissed")

            for html in seen:
                assert_no_secrets(html, system)

            # 6. Log out: the dashboard and its partials refuse us.
            await page.click("#logout")
            await expect(page).to_have_url(system.url + "/dashboard/login")
            await page.goto(system.url + "/dashboard")
            await expect(page).to_have_url(system.url + "/dashboard/login")
            refused = await page.request.get(
                system.url + "/dashboard/partials/summary", headers={"X-Requested-With": "fetch"}
            )
            assert refused.status == 401
            await shot("08-logged-out")
        finally:
            await browser.close()
