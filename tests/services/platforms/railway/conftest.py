from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from devtools.railway_fake import DeploySettings, FakeRailway, FakeSettings
from tests.services.platforms.railway.harness import FAST, TOKEN, Harness
from tests.support import serve


@pytest.fixture
def fake_settings() -> FakeSettings:
    return FakeSettings(tokens={TOKEN, "rw-test-token-2", "rw-test-token-3", "rw-test-token-4"})


@pytest.fixture
def deploy_settings() -> DeploySettings:
    return replace(FAST)


@pytest.fixture
async def railway(fake_settings: FakeSettings, deploy_settings: DeploySettings) -> AsyncIterator[Harness]:
    fake = FakeRailway(fake_settings, deploy_settings)
    async with httpx.AsyncClient(timeout=30) as http, serve(fake.app()) as url:
        yield Harness(fake, url, http)
