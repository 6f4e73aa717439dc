"""The pool's client for services loads a CA bundle and verifies certificates for an https URL,
and skips both (~0.7 MB of RSS) for plain HTTP, which never negotiates TLS."""

from __future__ import annotations

import ssl

import pytest

from pool.config import Settings
from pool.main import build_state
from tests.pool.conftest import API_KEY
from tests.pool.factories import ENCRYPTION_KEY


@pytest.mark.parametrize(
    ("url", "verified"),
    [("https://services.example", True), ("HTTPS://services.example", True), ("http://services:8001", False)],
)
async def test_only_an_https_services_url_loads_certificates_and_verifies(url: str, verified: bool) -> None:
    settings = Settings(
        environment="test",
        database_url="postgresql+asyncpg://u:p@127.0.0.1:1/db",
        api_key=API_KEY,
        services_api_key="k",
        encryption_key=ENCRYPTION_KEY,
        services_url=url,
    )
    state = build_state(settings)
    try:
        # httpx keeps its TLS context on the connection pool (no public accessor).
        context: ssl.SSLContext = state["services"]._client._transport._pool._ssl_context  # type: ignore[attr-defined]
        assert context.verify_mode == (ssl.CERT_REQUIRED if verified else ssl.CERT_NONE)
        assert (context.cert_store_stats()["x509_ca"] > 0) is verified
    finally:
        await state["services"].aclose()
        await state["instances"].aclose()
        await state["claims_db"].close()
        await state["engine"].dispose()
