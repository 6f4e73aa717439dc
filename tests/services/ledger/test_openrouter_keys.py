"""Operator actions on an instance's OpenRouter key, found through the ledger."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from services.config import Settings
from shared.errors import error_body
from tests.fakes.platform import MemoryPlatform
from tests.fakes.tools import Vendors, vendor_fakes
from tests.services.conftest import AUTH, AppClient, create_and_wait

IID = "inst00000001"


@pytest.fixture
def vendors(monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    with vendor_fakes(monkeypatch, pooled=False) as fakes:
        yield fakes


async def test_operator_disables_resumes_and_tops_up_the_instance_key(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    vendors: Vendors,
) -> None:
    body = {"instanceId": IID, "name": f"agent-{IID}", "tools": ["openrouter"]}
    async with app_client(make_settings(platform="memory")) as api:
        assert (await create_and_wait(api, body))["phase"] == "deploying"
        (key_hash,) = vendors.openrouter.keys
        disabled = await api.post(f"/tools/openrouter/{IID}/disable", json={}, headers=AUTH)
        assert vendors.openrouter.keys[key_hash]["disabled"] is True
        resumed = await api.post(f"/tools/openrouter/{IID}/disable", json={"disabled": False}, headers=AUTH)
        assert vendors.openrouter.keys[key_hash]["disabled"] is False
        topped = await api.post(f"/tools/openrouter/{IID}/top-up", json={"limit": 25.0}, headers=AUTH)

    assert disabled.status_code == 200
    assert disabled.json() == {"instanceId": IID, "resourceId": key_hash, "disabled": True, "limit": None}
    assert resumed.json()["disabled"] is False
    assert topped.json() == {"instanceId": IID, "resourceId": key_hash, "disabled": None, "limit": 25.0}
    assert vendors.openrouter.keys[key_hash]["limit"] == 25.0
    # The answer names the key by its hash only: the secret stays with the instance.
    assert vendors.openrouter.secrets[key_hash] not in disabled.text + topped.text


async def test_key_actions_refuse_unknown_instances_bad_limits_and_missing_auth(
    make_settings: Callable[..., Settings],
    app_client: AppClient,
    memory_platform: MemoryPlatform,
    vendors: Vendors,
) -> None:
    async with app_client(make_settings(platform="memory")) as api:
        unknown = await api.post(f"/tools/openrouter/{IID}/top-up", json={"limit": 5}, headers=AUTH)
        negative = await api.post(f"/tools/openrouter/{IID}/top-up", json={"limit": -1}, headers=AUTH)
        anonymous = await api.post(f"/tools/openrouter/{IID}/disable", json={})

    assert unknown.status_code == 404
    assert unknown.json() == error_body("NotFound", f"instance {IID} has no active openrouter key")
    assert negative.status_code == 422
    assert anonymous.status_code == 401
    assert vendors.openrouter.keys == {}
