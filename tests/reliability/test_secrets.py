"""A full lifecycle with every log line captured: create with real tool plugins (against the
vendor fakes), warm-up, claim, provision, destroy. Every secret the run made or was configured
with is then looked for in every response body the operator saw and every log line (both apps,
and the runtime's own log); none may appear."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pool.config import Settings as PoolSettings
from pool.main import create_app as create_pool_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from tests.fakes.tools import Vendors, vendor_fakes
from tests.support import serve

TOOLS = ["openrouter", "agentmail", "telnyx"]
POOL_KEY = "pool_sk_secrets_test_0123456789abcdef"
SERVICES_KEY = "services_sk_secrets_test_0123456789abcdef"
POOL_ENCRYPTION = "pool-encryption-secret-for-the-secrets-test"
SERVICES_ENCRYPTION = "services-encryption-secret-for-the-secrets-test"
ADMIN_PASSWORD = "admin password of the secrets test"


class Capture(logging.Handler):
    """Every record of every logger, as its raw message (stricter than the redacting formatter)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    with vendor_fakes(monkeypatch, pooled=False) as fakes:
        yield fakes


async def test_no_secret_of_a_full_lifecycle_reaches_a_response_or_a_log_line(
    pool_db_url: str, services_db_url: str, tmp_path: Path, vendors: Vendors, capture: Capture
) -> None:
    data_dir = tmp_path / "instances"
    services_settings = ServicesSettings(
        environment="test",
        database_url=services_db_url,
        api_key=SERVICES_KEY,
        encryption_key=SERVICES_ENCRYPTION,
        local_data_dir=str(data_dir),
        probe_timeout_seconds=1.0,
        local_stop_grace_seconds=3.0,
        sweep_interval_seconds=0,
    )
    seen: list[str] = []  # every response body the operator (or a dashboard) got
    instance_env: dict[str, str] = {}
    runtime_log = ""
    async with serve(create_services_app(services_settings)) as services_url:
        pool_settings = PoolSettings(
            environment="test",
            database_url=pool_db_url,
            api_key=POOL_KEY,
            admin_password=ADMIN_PASSWORD,
            services_url=services_url,
            services_api_key=SERVICES_KEY,
            encryption_key=POOL_ENCRYPTION,
            tools=TOOLS,
            min_idle=1,
            max_total=2,
            tick_enabled=False,
        )
        async with serve(create_pool_app(pool_settings)) as pool_url, httpx.AsyncClient(timeout=60) as http:
            operator = {"Authorization": f"Bearer {POOL_KEY}"}
            services_operator = {"Authorization": f"Bearer {SERVICES_KEY}"}

            async def get(url: str, headers: dict[str, str]) -> httpx.Response:
                response = await http.get(url, headers=headers)
                seen.append(response.text)
                return response

            async def post(url: str, body: object, headers: dict[str, str]) -> httpx.Response:
                response = await http.post(url, json=body, headers=headers)
                seen.append(response.text)
                return response

            created = await post(f"{pool_url}/api/pool/replenish", {"count": 1}, operator)
            assert created.status_code == 200, created.text
            [instance_id] = created.json()["created"]
            deadline = time.monotonic() + 60
            while (await get(f"{pool_url}/api/pool/counts", operator)).json()["idle"] < 1:
                assert time.monotonic() < deadline, "the instance never became idle"
                await post(f"{pool_url}/api/pool/reconcile", None, operator)
                await asyncio.sleep(0.3)
            instance_env = json.loads((data_dir / instance_id / "env.json").read_text())

            claim = await post(
                f"{pool_url}/api/pool/claim", {"agentName": "Ada", "instructions": "Be brief."}, operator
            )
            assert claim.status_code == 200, claim.text
            for path in (
                "/api/pool/status",
                "/api/pool/instances",
                "/api/pool/agents",
                "/metrics",
                "/healthz",
            ):
                assert (await get(pool_url + path, operator)).status_code == 200
            for path in ("/registry", "/healthz", "/version"):
                assert (await get(services_url + path, services_operator)).status_code == 200
            batch = await post(f"{services_url}/status/batch", {}, services_operator)
            assert batch.status_code == 200
            runtime_log = (data_dir / instance_id / "runtime.log").read_text()

            killed = await http.delete(f"{pool_url}/api/pool/instances/{instance_id}", headers=operator)
            seen.append(killed.text)
            assert killed.status_code == 200, killed.text
    assert vendors.leftovers() == {"openrouter": 0, "agentmail": 0, "telnyx": 0}

    made = {
        name: value
        for name, value in instance_env.items()
        if any(word in name for word in ("TOKEN", "KEY", "SECRET")) and len(value) >= 8
    }
    # The run really made per-instance secrets (else this test would prove nothing).
    assert {"GATEWAY_TOKEN", "INSTANCE_SERVICES_TOKEN", "OPENROUTER_API_KEY"} <= made.keys()
    secrets = {
        **made,
        "pool api key": POOL_KEY,
        "services api key": SERVICES_KEY,
        "pool encryption key": POOL_ENCRYPTION,
        "services encryption key": SERVICES_ENCRYPTION,
        "admin password": ADMIN_PASSWORD,
        "openrouter management key": vendors.openrouter.management_key,
        "agentmail api key": vendors.agentmail.api_key,
        "telnyx api key": vendors.telnyx.api_key,
        **{f"openrouter key {n}": key for n, key in enumerate(vendors.secrets())},
    }
    assert len(capture.lines) > 20 and runtime_log  # the logs were captured
    places = {"response": seen, "log": capture.lines, "runtime log": runtime_log.splitlines()}
    leaks = [
        f"{name} in {where}: {line[:300]}"
        for name, secret in secrets.items()
        for where, lines in places.items()
        for line in lines
        if secret in line
    ]
    assert leaks == [], "\n".join(leaks)
