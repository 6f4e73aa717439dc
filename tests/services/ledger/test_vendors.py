"""The ledger end to end with every real plugin against the vendor fakes (specs/*.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.config import Settings
from services.pooled import service as pooled
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker
from shared.errors import error_body
from tests.fakes.platform import MemoryPlatform
from tests.fakes.tools import Vendors, vendor_fakes
from tests.services.conftest import AUTH, AppClient, Rows, create_and_wait

IID = "inst00000001"
OTHER = "inst00000002"
ALL_TOOLS = ["openrouter", "agentmail", "telnyx", "bankr"]
WALLET = "bk_wallet_secret_0123456789"


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    with vendor_fakes(monkeypatch) as fakes:
        yield fakes


@pytest.fixture
async def sessionmaker(services_db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(services_db_url, pool_size=2)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def wallets(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    async with sessionmaker.begin() as session:
        box = SecretBox("test-encryption-key")
        await pooled.add_resource(session, box=box, kind="bankr", label="wallet 0", value=WALLET)


def body(instance_id: str = IID, tools: list[str] | None = None) -> dict[str, Any]:
    chosen = ALL_TOOLS if tools is None else tools
    return {"instanceId": instance_id, "name": f"agent-{instance_id}", "tools": chosen}


async def test_registry_lists_only_configured_plugins_and_an_unconfigured_one_is_a_400(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with vendor_fakes(monkeypatch, pooled=False):
        monkeypatch.delenv("TELNYX_API_KEY")
        async with app_client(make_settings(platform="memory")) as api:
            registry = await api.get("/registry", headers=AUTH)
            refused = await api.post("/create-instance", json=body(tools=["telnyx"]), headers=AUTH)

    assert registry.json()["tools"] == [
        {"id": "agentmail", "mode": "per-instance", "envKey": "AGENTMAIL_INBOX", "configured": True},
        {"id": "openrouter", "mode": "per-instance", "envKey": "OPENROUTER_API_KEY", "configured": True},
    ]
    assert refused.status_code == 400
    assert refused.json() == error_body(
        "BadRequest", "tool 'telnyx' is not configured (configured: agentmail, openrouter)"
    )


async def test_create_with_every_tool_then_destroy_makes_and_deletes_each_resource_once(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    vendors: Vendors,
    wallets: None,
    sessionmaker: async_sessionmaker[AsyncSession],
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        created = await create_and_wait(api, body())
        assert created["phase"] == "deploying", created
        env = memory_platform.created[0].env
        assert env["BANKR_API_KEY"] == WALLET
        assert env["OPENROUTER_API_KEY"] in vendors.secrets()
        destroyed = await api.delete(f"/destroy/{IID}", headers=AUTH)

    assert destroyed.status_code == 200, destroyed.text
    assert vendors.counts() == {"openrouter": (1, 1), "agentmail": (1, 1), "telnyx": (1, 1)}
    assert vendors.leftovers() == {"openrouter": 0, "agentmail": 0, "telnyx": 0}
    async with sessionmaker() as session:
        free = [row for row in await pooled.list_resources(session, kind="bankr") if row.instance_id is None]
        assert len(free) == 1
    assert await db_rows() == ([], [])


@pytest.mark.parametrize(
    "failing",
    ["openrouter", "agentmail", "telnyx", "platform"],
    ids=["first", "middle", "last-tool", "platform"],
)
async def test_a_failure_at_any_step_of_a_multi_tool_create_leaves_nothing_anywhere(
    failing: str,
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    vendors: Vendors,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    if failing == "openrouter":
        vendors.openrouter.failures.fail("create", 500)
    elif failing == "agentmail":
        vendors.agentmail.failures.fail("create", 422)
    elif failing == "telnyx":
        # Bought, then the profile assignment is refused: the plugin must release the number.
        vendors.telnyx.failures.fail("messaging", 422)
    else:
        memory_platform.fail_create = "railway said no"
    tools = ["openrouter", "agentmail", "telnyx"]
    async with app_client(make_settings(platform="memory")) as api:
        failed = await create_and_wait(api, body(tools=tools))
        infra, ledger = await db_rows()
        destroyed = await api.delete(f"/destroy/{IID}", headers=AUTH)

    assert failed["phase"] == "failed"
    assert vendors.leftovers() == {"openrouter": 0, "agentmail": 0, "telnyx": 0}
    assert memory_platform.live == {}
    # The failed create's row waits (its reason on it, nothing recorded) for the pool's destroy.
    assert ([(r.state, r.platform_ref) for r in infra], ledger) == ([("failed", {})], [])
    assert destroyed.json()["destroyed"] is True
    assert await db_rows() == ([], [])


async def instance_token(api: Any, platform: MemoryPlatform, instance_id: str) -> str:
    created = await create_and_wait(api, body(instance_id, tools=[]))
    assert created["phase"] == "deploying", created
    spec = next(spec for spec in platform.created if spec.instance_id == instance_id)
    return str(spec.env["INSTANCE_SERVICES_TOKEN"])


async def test_twenty_concurrent_self_provisions_of_a_real_plugin_make_one_key(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    vendors: Vendors,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        token = await instance_token(api, memory_platform, IID)
        headers = {"Authorization": f"Bearer {token}"}
        responses = await asyncio.gather(
            *(api.post(f"/provision/{IID}/openrouter", headers=headers) for _ in range(20))
        )

    assert [r.status_code for r in responses] == [200] * 20
    grants = {(r.json()["resourceId"], r.json()["envValue"]) for r in responses}
    (secret,) = vendors.secrets()
    assert grants == {(next(iter(vendors.openrouter.keys)), secret)}
    assert vendors.counts()["openrouter"] == (1, 0)


async def test_another_instances_token_is_403_and_nothing_reaches_the_vendor(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    vendors: Vendors,
    db_rows: Callable[[], Awaitable[Rows]],
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        token = await instance_token(api, memory_platform, IID)
        await instance_token(api, memory_platform, OTHER)
        headers = {"Authorization": f"Bearer {token}"}
        refused = await api.post(f"/provision/{OTHER}/openrouter", headers=headers)
        operator_only = [
            await api.get("/registry", headers=headers),
            await api.post("/sweep", headers=headers),
            await api.get("/pooled", headers=headers),
        ]

    assert refused.status_code == 403
    assert refused.json() == error_body("Forbidden", "an instance token is valid for its own instance only")
    assert [r.status_code for r in operator_only] == [401, 401, 401]
    assert vendors.counts()["openrouter"] == (0, 0)
    _, ledger = await db_rows()
    assert ledger == []


async def test_secrets_reach_only_their_own_instance_and_never_the_logs(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    vendors: Vendors,
    wallets: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with app_client(make_settings(platform="memory")) as api:
        token = await instance_token(api, memory_platform, IID)
        operator_views = [
            await api.post(f"/provision/{IID}/openrouter", headers=AUTH),
            await api.post(f"/provision/{IID}/bankr", headers=AUTH),
            await api.get("/pooled", headers=AUTH),
            await api.get("/registry", headers=AUTH),
            await api.post("/sweep", headers=AUTH),
        ]
        own = await api.post(f"/provision/{IID}/openrouter", headers={"Authorization": f"Bearer {token}"})

    (secret,) = vendors.secrets()
    assert own.json()["envValue"] == secret
    assert operator_views[0].json()["envValue"] is None
    assert operator_views[1].json()["envValue"] is None
    listed = operator_views[2].json()
    assert listed == [
        {
            "id": listed[0]["id"],
            "kind": "bankr",
            "label": "wallet 0",
            "resourceRef": None,
            "instanceId": IID,
            "assignedAt": listed[0]["assignedAt"],
        }
    ]
    for response in operator_views:
        assert secret not in response.text and WALLET not in response.text
    logged = caplog.text
    assert "tool.provisioned" in logged
    for value in (secret, WALLET, token, vendors.openrouter.management_key, vendors.agentmail.api_key):
        assert value not in logged
