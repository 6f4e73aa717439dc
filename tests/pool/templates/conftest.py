"""The pool in-process with services served over real HTTP, so a template's tools are checked
against services' own registry (OpenRouter, AgentMail and Telnyx configured on the vendor fakes)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from pool.config import Settings
from pool.main import create_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.fakes.tools import vendor_fakes
from tests.pool.conftest import running
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
