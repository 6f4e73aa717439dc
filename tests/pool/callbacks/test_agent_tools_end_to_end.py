"""Issue 16, the agent's side, on the local provider with the vendor fakes: a real runtime process's
tool (`python -m runtime.tools`, its own env) sends mail from its inbox and reads its messages, sends an
SMS from its number and reads the reply; the vendors' inbound webhooks, signed as they sign them, reach
the runtime's `/convos/notify`; another instance's token, a forged signature and an unknown recipient
are refused (and counted); no answer or log line carries a vendor key."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import time
from typing import Any

import httpx
import pytest

from services.inbound.signatures import sign_svix
from tests.pool.callbacks.conftest import OPERATOR, WEBHOOK_SECRET, Fleet
from tests.pool.tick.conftest import SERVICES_KEY

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def tool(fleet: Fleet, instance_id: str, *args: str, token: str | None = None) -> tuple[int, Any, str]:
    """Run the runtime's tool as the instance would: with its own env file, nothing else."""
    env_file = json.loads((fleet.data_dir / instance_id / "env.json").read_text())
    env = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in env_file.items()}}
    if token is not None:
        env["GATEWAY_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "runtime.tools",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    answer = json.loads(out)
    return answer["status"], answer["body"], out.decode() + err.decode()


def svix_headers(body: bytes, delivery: str, *, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "svix-id": delivery,
        "svix-timestamp": str(stamp),
        "svix-signature": sign_svix(secret, delivery, stamp, body),
        "content-type": "application/json",
    }


def telnyx_headers(fleet: Fleet, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = fleet.telnyx_key.sign(f"{stamp}|".encode() + body)
    return {
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "content-type": "application/json",
    }


async def notices(fleet: Fleet, instance_id: str) -> list[dict[str, Any]]:
    rows = (await fleet.pool.get("/api/pool/instances", headers=OPERATOR)).json()
    url = next(row["url"] for row in rows if row["id"] == instance_id)
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(
            f"{url}/convos/notifications", headers={"Authorization": f"Bearer {fleet.tokens[instance_id]}"}
        )
    assert answer.status_code == 200, answer.text
    return list(answer.json())


async def test_an_agent_mails_and_texts_through_its_own_tool(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    mine, other = sorted(fleet.tokens)
    outputs: list[str] = []

    status, info, out = await tool(fleet, mine, "info")
    outputs.append(out)
    assert status == 200 and info["instanceId"] == mine, out
    inbox, phone = info["email"], info["phone"]

    status, sent, out = await tool(
        fleet, mine, "mail-send", "--to", "friend@example.com", "--subject", "hi", "--text", "hello"
    )
    outputs.append(out)
    assert status == 200, out
    assert fleet.vendors.agentmail.mail.sent[-1]["inbox_id"] == inbox

    # A reply arrives at AgentMail; its signed webhook reaches the agent's runtime.
    reply = fleet.vendors.agentmail.mail.deliver(
        inbox, sender="friend@example.com", subject="re: hi", text="back"
    )
    event = {
        "type": "event",
        "event_type": "message.received",
        "event_id": "evt_1",
        "message": {
            "inbox_id": inbox,
            "message_id": reply,
            "thread_id": "t",
            "from": [{"email": "friend@example.com"}],
            "subject": "re: hi",
            "preview": "back",
        },
    }
    body = json.dumps(event).encode()
    async with httpx.AsyncClient(base_url=fleet.services_url, timeout=30) as services:
        hook = await services.post("/webhooks/agentmail", content=body, headers=svix_headers(body, "msg_1"))
        assert hook.status_code == 200 and hook.json()["instanceId"] == mine, hook.text
        again = await services.post("/webhooks/agentmail", content=body, headers=svix_headers(body, "msg_1"))
        assert again.json() == {"ok": True, "duplicate": True}
        forged = await services.post(
            "/webhooks/agentmail",
            content=body,
            headers=svix_headers(body, "msg_2", secret="whsec_" + base64.b64encode(b"x" * 32).decode()),
        )
        assert forged.status_code == 401
        stray = json.dumps(
            {**event, "message": {**event["message"], "inbox_id": "nobody@agentmail.to"}}
        ).encode()
        unknown = await services.post(
            "/webhooks/agentmail", content=stray, headers=svix_headers(stray, "msg_3")
        )
        assert unknown.status_code == 404
    kept = await notices(fleet, mine)
    assert [(n["kind"], n["messageId"]) for n in kept] == [("email", reply)]

    status, listed, out = await tool(fleet, mine, "mail-list")
    outputs.append(out)
    assert reply in {m["message_id"] for m in listed["messages"]}
    status, read, out = await tool(fleet, mine, "mail-read", reply)
    outputs.append(out)
    assert status == 200 and read["text"] == "back"
    # The other instance, with its own tool, cannot read it; with this one's id and its token, nothing.
    status, _, out = await tool(fleet, other, "mail-read", reply)
    assert status in (403, 404), out
    status, _, out = await tool(fleet, mine, "info", token=fleet.tokens[other])
    assert status == 401, out

    # SMS: sent from its own number; a reply comes back through Telnyx's signed webhook.
    status, texted, out = await tool(fleet, mine, "sms-send", "--to", "+15550001111", "--text", "hi")
    outputs.append(out)
    assert status == 200 and texted["data"]["from"]["phone_number"] == phone, out
    answer_id = fleet.vendors.telnyx.sms.deliver(sender="+15550001111", to=phone, text="hey you")
    event = {
        "data": {
            "event_type": "message.received",
            "id": "evt_sms_1",
            "occurred_at": "2026-11-30T00:00:00Z",
            "payload": {
                "id": answer_id,
                "direction": "inbound",
                "from": {"phone_number": "+15550001111"},
                "to": [{"phone_number": phone}],
                "text": "hey you",
            },
        },
        "meta": {},
    }
    body = json.dumps(event).encode()
    async with httpx.AsyncClient(base_url=fleet.services_url, timeout=30) as services:
        hook = await services.post("/webhooks/telnyx", content=body, headers=telnyx_headers(fleet, body))
        assert hook.status_code == 200 and hook.json()["instanceId"] == mine, hook.text
        tampered = await services.post(
            "/webhooks/telnyx",
            content=body.replace(b"hey you", b"pay me"),
            headers=telnyx_headers(fleet, body),
        )
        assert tampered.status_code == 401
        counts = (
            await services.get("/webhooks/counts", headers={"Authorization": f"Bearer {SERVICES_KEY}"})
        ).json()
    assert counts["agentmail.delivered"] == 1 and counts["agentmail.duplicate"] == 1
    assert counts["agentmail.bad_signature"] == 1 and counts["agentmail.unknown_recipient"] == 1
    assert counts["telnyx.delivered"] == 1 and counts["telnyx.bad_signature"] == 1
    assert ("sms", "hey you") in {(n["kind"], n.get("text")) for n in await notices(fleet, mine)}

    status, replies, out = await tool(fleet, mine, "sms-replies")
    outputs.append(out)
    assert [r["id"] for r in replies["data"]] == [answer_id]
    status, message, out = await tool(fleet, mine, "sms-read", answer_id)
    outputs.append(out)
    assert status == 200 and message["data"]["text"] == "hey you"
    status, _, out = await tool(fleet, other, "sms-read", answer_id)
    assert status == 403, out

    # No vendor key anywhere: the tool's outputs, the apps' logs, the runtimes' logs.
    runtime_logs = [path.read_text(errors="replace") for path in fleet.data_dir.glob("*/runtime.log")]
    assert runtime_logs
    keys = (
        fleet.vendors.agentmail.api_key,
        fleet.vendors.telnyx.api_key,
        fleet.vendors.openrouter.management_key,
    )
    for text in (*outputs, caplog.text, *runtime_logs):
        for key in keys:
            assert key not in text
