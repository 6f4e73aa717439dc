"""A pool app with the dashboard, served over real HTTP on a fresh pool database (no tick, no services)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from pool.config import Settings
from pool.main import create_app
from tests.support import serve

API_KEY = "pool_sk_dashboard_test_api_key_0123456789"
ADMIN_PASSWORD = "correct horse battery staple"
ENCRYPTION_KEY = "dashboard-test-encryption-key-abcdef"
SERVICES_API_KEY = "services_sk_dashboard_test_services_key_987"


@dataclass
class Dashboard:
    url: str
    settings: Settings


def dashboard_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "api_key": API_KEY,
        "admin_password": ADMIN_PASSWORD,
        "encryption_key": ENCRYPTION_KEY,
        "services_api_key": SERVICES_API_KEY,
        "services_url": "http://127.0.0.1:9",
        "tick_enabled": False,
        "min_idle": 2,
        # A short throttle, so tests that guess wrong do not wait seconds.
        "login_delay_max_seconds": 0.4,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def dashboard(pool_db_url: str) -> AsyncIterator[Dashboard]:
    settings = dashboard_settings(pool_db_url)
    async with serve(create_app(settings)) as url:
        yield Dashboard(url=url, settings=settings)


@pytest.fixture
async def client(dashboard: Dashboard) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=dashboard.url, timeout=10.0) as http:
        yield http


def form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field in the page"
    return match.group(1)


def page_csrf(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match, "no csrf-token meta in the page"
    return match.group(1)


async def log_in(client: httpx.AsyncClient, secret: str = ADMIN_PASSWORD) -> httpx.Response:
    page = await client.get("/dashboard/login")
    return await client.post("/dashboard/login", data={"secret": secret, "csrf_token": form_token(page.text)})
