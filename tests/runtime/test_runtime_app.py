import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.app import create_app
from runtime.config import Settings

TOKEN = "gw_test_token_0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {"agentName": "Ada", "instructions": "Be kind."}
INVITE_BASE = "https://convos.local/invite/"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(gateway_token=TOKEN, instance_id="inst_1", runtime_data_dir=tmp_path, **overrides)


def make_client(settings: Settings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(settings))
    return httpx.AsyncClient(transport=transport, base_url="http://rt")


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(make_settings(tmp_path)) as c:
        yield c


async def test_health_is_ready_without_auth(client: httpx.AsyncClient) -> None:
    response = await client.get("/pool/health")
    assert response.status_code == 200
    assert response.json() == {
        "ready": True,
        "version": "0.1.0",
        "runtime": "warmpool-runtime",
        "capabilities": ["export", "import", "instructions"],
    }


async def test_health_is_503_during_startup_delay_then_200(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path, runtime_startup_delay=0.3)) as c:
        response = await c.get("/pool/health")
        assert (response.status_code, response.json()) == (503, {"ready": False})
        provision = await c.post("/pool/provision", json=BODY, headers=AUTH)
        assert provision.status_code == 503
        assert provision.json() == {"error": "NotReady", "detail": "runtime is still starting"}
        await asyncio.sleep(0.35)
        response = await c.get("/pool/health")
        assert response.status_code == 200


async def test_health_never_ready_knob(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path, runtime_never_ready=True)) as c:
        response = await c.get("/pool/health")
    assert (response.status_code, response.json()) == (503, {"ready": False})


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/pool/provision"), ("GET", "/convos/status"), ("POST", "/convos/reset")],
)
@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer "}, "missing bearer token"),
        ({"Authorization": f"Basic {TOKEN}"}, "missing bearer token"),
        ({"Authorization": "Bearer wrong"}, "invalid bearer token"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "invalid bearer token"),
    ],
)
async def test_private_routes_reject_missing_or_wrong_token(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], detail: str
) -> None:
    response = await client.request(method, path, json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized", "detail": detail}
    assert response.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in response.text


async def test_status_is_clean_before_provision(client: httpx.AsyncClient) -> None:
    response = await client.get("/convos/status", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"conversationId": None, "inboxId": None, "pending": False, "clean": True}


async def test_provision_creates_a_conversation(client: httpx.AsyncClient) -> None:
    response = await client.post("/pool/provision", json=BODY, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    conversation_id = body["conversationId"]
    assert re.fullmatch(r"conv_[0-9a-f]{16}", conversation_id)
    assert body == {
        "ok": True,
        "conversationId": conversation_id,
        "inviteUrl": f"{INVITE_BASE}{conversation_id}",
        "joined": False,
        "status": "created",
    }
    status = (await client.get("/convos/status", headers=AUTH)).json()
    assert re.fullmatch(r"inbox_[0-9a-f]{16}", status["inboxId"])
    assert status == {
        "conversationId": conversation_id,
        "inboxId": status["inboxId"],
        "pending": False,
        "clean": False,
    }


async def test_provision_accepts_optional_fields(client: httpx.AsyncClient) -> None:
    body = {**BODY, "profileImage": "https://img.local/a.png", "metadata": {"claimId": "c1"}}
    response = await client.post("/pool/provision", json=body, headers=AUTH)
    assert response.status_code == 200


async def test_provision_returns_409_when_already_bound(client: httpx.AsyncClient) -> None:
    first = (await client.post("/pool/provision", json=BODY, headers=AUTH)).json()
    response = await client.post("/pool/provision", json=BODY, headers=AUTH)
    assert response.status_code == 409
    assert response.json() == {"error": "Conflict", "detail": f"already bound to {first['conversationId']}"}


async def test_reset_leaves_the_instance_clean_and_provisionable(client: httpx.AsyncClient) -> None:
    first = (await client.post("/pool/provision", json=BODY, headers=AUTH)).json()
    response = await client.post("/convos/reset", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"ok": True, "reset": True})
    status = (await client.get("/convos/status", headers=AUTH)).json()
    assert status == {"conversationId": None, "inboxId": None, "pending": False, "clean": True}
    again = await client.post("/pool/provision", json=BODY, headers=AUTH)
    assert again.status_code == 200
    assert again.json()["conversationId"] != first["conversationId"]


async def test_reset_when_clean_succeeds(client: httpx.AsyncClient) -> None:
    response = await client.post("/convos/reset", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"ok": True, "reset": True})


async def test_provision_with_our_invite_url_joins_that_conversation(client: httpx.AsyncClient) -> None:
    join_url = f"{INVITE_BASE}conv_00112233aabbccdd"
    response = await client.post("/pool/provision", json={**BODY, "joinUrl": join_url}, headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "conversationId": "conv_00112233aabbccdd",
        "inviteUrl": join_url,
        "joined": True,
        "status": "joined",
    }
    status = (await client.get("/convos/status", headers=AUTH)).json()
    assert status == {
        "conversationId": "conv_00112233aabbccdd",
        "inboxId": status["inboxId"],
        "pending": False,
        "clean": False,
    }


async def test_provision_with_foreign_invite_url_gets_a_stable_id(tmp_path: Path) -> None:
    join_url = "https://elsewhere.example/i/abc?x=1"
    ids = []
    for name in ("a", "b"):
        async with make_client(make_settings(tmp_path / name)) as c:
            response = await c.post("/pool/provision", json={**BODY, "joinUrl": join_url}, headers=AUTH)
            assert response.json()["inviteUrl"] == join_url
            ids.append(response.json()["conversationId"])
    assert ids[0] == ids[1]
    assert re.fullmatch(r"conv_[0-9a-f]{16}", ids[0])


async def test_join_pending_knob_answers_pending_acceptance(tmp_path: Path) -> None:
    join_url = f"{INVITE_BASE}conv_00112233aabbccdd"
    async with make_client(make_settings(tmp_path, runtime_join_pending=True)) as c:
        response = await c.post("/pool/provision", json={**BODY, "joinUrl": join_url}, headers=AUTH)
        status = (await c.get("/convos/status", headers=AUTH)).json()
    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "conversationId": "conv_00112233aabbccdd",
        "inviteUrl": join_url,
        "joined": False,
        "status": "pending_acceptance",
    }
    assert status == {
        "conversationId": "conv_00112233aabbccdd",
        "inboxId": status["inboxId"],
        "pending": True,
        "clean": False,
    }


async def test_join_pending_knob_does_not_affect_new_conversations(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path, runtime_join_pending=True)) as c:
        response = await c.post("/pool/provision", json=BODY, headers=AUTH)
    assert (response.json()["status"], response.json()["joined"]) == ("created", False)


async def test_fail_provision_knob_answers_500_and_stays_clean(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path, runtime_fail_provision=True)) as c:
        response = await c.post("/pool/provision", json=BODY, headers=AUTH)
        status = (await c.get("/convos/status", headers=AUTH)).json()
    assert response.status_code == 500
    assert response.json() == {
        "error": "ProvisionFailed",
        "detail": "provisioning failed (RUNTIME_FAIL_PROVISION)",
    }
    assert status["clean"] is True


async def test_provision_delay_knob_slows_provision(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path, runtime_provision_delay=0.2)) as c:
        started = time.monotonic()
        response = await c.post("/pool/provision", json=BODY, headers=AUTH)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.2


async def test_concurrent_provisions_bind_exactly_once(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path, runtime_provision_delay=0.05)) as c:
        responses = await asyncio.gather(
            *(c.post("/pool/provision", json=BODY, headers=AUTH) for _ in range(5))
        )
        status = (await c.get("/convos/status", headers=AUTH)).json()
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409, 409, 409, 409]
    winner = next(r for r in responses if r.status_code == 200)
    assert status["conversationId"] == winner.json()["conversationId"]


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"{}",
        b'{"agentName": "Ada"}',
        b'{"agentName": "", "instructions": "x"}',
        b'{"agentName": 3, "instructions": "x"}',
        b'{"agentName": "Ada", "instructions": "x", "metadata": "no"}',
        b"[1, 2]",
    ],
)
async def test_provision_with_bad_body_returns_400_json(client: httpx.AsyncClient, content: bytes) -> None:
    headers = {**AUTH, "Content-Type": "application/json"}
    response = await client.post("/pool/provision", content=content, headers=headers)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "BadRequest"
    assert isinstance(body["detail"], list) and body["detail"]
    assert all(set(item) == {"loc", "msg", "type"} for item in body["detail"])


async def test_unknown_route_returns_json_error(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope")
    assert (response.status_code, response.json()) == (404, {"error": "HTTPError", "detail": "Not Found"})


async def test_binding_survives_a_new_app_on_the_same_data_dir(tmp_path: Path) -> None:
    async with make_client(make_settings(tmp_path)) as c:
        created = (await c.post("/pool/provision", json=BODY, headers=AUTH)).json()
    async with make_client(make_settings(tmp_path)) as c:
        status = (await c.get("/convos/status", headers=AUTH)).json()
        again = await c.post("/pool/provision", json=BODY, headers=AUTH)
    assert status["conversationId"] == created["conversationId"]
    assert again.status_code == 409


async def test_token_never_appears_in_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await client.post("/pool/provision", json=BODY, headers=AUTH)
    await client.post("/pool/provision", json=BODY, headers={"Authorization": "Bearer wrong"})
    await client.get("/convos/status", headers=AUTH)
    await client.post("/convos/reset", headers=AUTH)
    assert "runtime.provisioned" in caplog.text
    assert "runtime.reset" in caplog.text
    assert TOKEN not in caplog.text
