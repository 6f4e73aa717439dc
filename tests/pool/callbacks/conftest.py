"""The whole proxy path on one machine: the pool (its loop warming real runtime processes of the local
provider) and services over real HTTP, services' vendor plugins on the vendor fakes (respx)."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from pool.main import create_app as create_pool_app
from pool.models import Instance
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker
from tests.fakes.tools import Vendors, vendor_fakes
from tests.pool.tick.conftest import SERVICES_KEY, pool_settings
from tests.support import free_port, serve

KEY = "test-pool-key"
OPERATOR = {"Authorization": f"Bearer {KEY}"}


WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"agentmail-webhook-test-secret-32b").decode()


@dataclass
class Fleet:
    pool: httpx.AsyncClient
    services_url: str
    vendors: Vendors
    tokens: dict[str, str]  # instance id → its gateway token
    data_dir: Path
    telnyx_key: Ed25519PrivateKey

    def proxy_auth(self, instance_id: str, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {instance_id}:{token or self.tokens[instance_id]}"}

    def body_auth(self, instance_id: str, **extra: object) -> dict[str, object]:
        return {"instanceId": instance_id, "gatewayToken": self.tokens[instance_id], **extra}


@pytest.fixture
async def fleet(
    monkeypatch: pytest.MonkeyPatch, pool_db_url: str, services_db_url: str, tmp_path: Path
) -> AsyncIterator[Fleet]:
    telnyx_key = Ed25519PrivateKey.generate()
    public = base64.b64encode(telnyx_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    pool_port = free_port()
    with vendor_fakes(monkeypatch, pooled=False) as vendors:
        services_settings = ServicesSettings(
            pool_url=f"http://127.0.0.1:{pool_port}",
            agentmail_webhook_secret=WEBHOOK_SECRET,
            telnyx_webhook_public_key=public,
            environment="test",
            database_url=services_db_url,
            api_key=SERVICES_KEY,
            encryption_key="test-encryption-key",
            local_data_dir=str(tmp_path / "instances"),
            probe_timeout_seconds=1.0,
            local_stop_grace_seconds=3.0,
            default_tools=["openrouter", "agentmail", "telnyx"],
            proxy_credits_increment=20.0,
            proxy_credits_cap=30.0,
        )
        async with serve(create_services_app(services_settings)) as services_url:
            settings = pool_settings(
                pool_db_url,
                services_url,
                min_idle=2,
                max_total=2,
                api_key=KEY,
                tick_enabled=True,
                proxy_send_limit=5,
                proxy_send_window_seconds=600.0,
            )
            async with (
                serve(create_pool_app(settings), port=pool_port) as pool_url,
                httpx.AsyncClient(base_url=pool_url, timeout=60) as pool,
            ):
                tokens = await _idle_tokens(pool, pool_db_url, settings.encryption_key)
                yield Fleet(pool, services_url, vendors, tokens, tmp_path / "instances", telnyx_key)


async def _idle_tokens(pool: httpx.AsyncClient, pool_db_url: str, key: str) -> dict[str, str]:
    deadline = time.monotonic() + 90
    while (await pool.get("/api/pool/counts", headers=OPERATOR)).json().get("idle", 0) < 2:
        assert time.monotonic() < deadline, "the pool never warmed up"
        await asyncio.sleep(0.2)
    engine = make_engine(pool_db_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            rows = (await session.scalars(select(Instance))).all()
        box = SecretBox(key)
        return {row.id: box.decrypt(row.gateway_token_enc or "") for row in rows}
    finally:
        await engine.dispose()
