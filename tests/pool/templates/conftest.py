"""The pool in-process with services served over real HTTP, so a template's tools are checked
against services' own registry (OpenRouter, AgentMail and Telnyx configured on the vendor fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pool.config import Settings
from pool.main import create_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.fakes.tools import vendor_fakes
from tests.pool.conftest import running
from tests.pool.dashboard.conftest import dashboard_settings, log_in
from tests.pool.tick.conftest import SERVICES_KEY
from tests.support import serve


@pytest.fixture
async def client(
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
    services_db_url: str,
    tmp_path: Path,
) -> AsyncIterator[httpx.AsyncClient]:
    with vendor_fakes(monkeypatch, pooled=False):
        services_settings = ServicesSettings(
            environment="test",
            database_url=services_db_url,
            api_key=SERVICES_KEY,
            encryption_key="test-encryption-key",
            local_data_dir=str(tmp_path / "instances"),
        )
        async with serve(create_services_app(services_settings)) as services_url:
            settings = make_settings(services_url=services_url, services_api_key=SERVICES_KEY)
            async with running(create_app(settings)) as pool:
                yield pool


@dataclass
class DashboardWithServices:
    """The pool with its dashboard over real HTTP, services (tools' registry) behind it."""

    url: str
    settings: Settings
    services_url: str


@pytest.fixture
async def dashboard_with_services(
    monkeypatch: pytest.MonkeyPatch, pool_db_url: str, services_db_url: str, tmp_path: Path
) -> AsyncIterator[DashboardWithServices]:
    with vendor_fakes(monkeypatch, pooled=False):
        services_settings = ServicesSettings(
            environment="test",
            database_url=services_db_url,
            api_key=SERVICES_KEY,
            encryption_key="test-encryption-key",
            local_data_dir=str(tmp_path / "instances"),
        )
        async with serve(create_services_app(services_settings)) as services_url:
            settings = dashboard_settings(
                pool_db_url, services_url=services_url, services_api_key=SERVICES_KEY
            )
            async with serve(create_app(settings)) as url:
                yield DashboardWithServices(url, settings, services_url)


@pytest.fixture
async def operator(dashboard_with_services: DashboardWithServices) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client logged into the dashboard (cookie jar, no redirects followed)."""
    async with httpx.AsyncClient(base_url=dashboard_with_services.url, timeout=15.0) as http:
        assert (await log_in(http)).status_code == 303
        yield http
