"""Issue 16 end to end: an agent sends mail from its own inbox and reads its own messages, sends an SMS
from its own number and reads its replies, through the pool's proxy with its own credentials; another
instance's token, another instance's message and a forged sender are refused; no answer carries a vendor
key; every call is in the instance's event log; sends are rate-limited with Retry-After."""

from __future__ import annotations

import base64
import json

import pytest

from tests.pool.callbacks.conftest import OPERATOR, Fleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def no_vendor_key(fleet: Fleet, text: str) -> None:
    for secret in (
        fleet.vendors.agentmail.api_key,
        fleet.vendors.telnyx.api_key,
        fleet.vendors.openrouter.management_key,
    ):
        assert secret not in text


async def test_mail_and_sms_through_the_proxy_scoped_to_the_instance(fleet: Fleet) -> None:
    mine, other = sorted(fleet.tokens)
    pool = fleet.pool

    info = await pool.get("/api/proxy/info", headers=fleet.proxy_auth(mine))
    assert info.status_code == 200, info.text
    inbox, phone = info.json()["email"], info.json()["phone"]
    assert info.json()["instanceId"] == mine and inbox and phone

    # Mail: send from its own inbox; the proxy sets the sender whatever the body says.
    sent = await pool.post(
        "/api/proxy/email/send",
        headers=fleet.proxy_auth(mine),
        json={"to": "friend@example.com", "subject": "hi", "text": "hello", "headers": {"X-Evil": "1"}},
    )
    assert sent.status_code == 200, sent.text
    assert fleet.vendors.agentmail.mail.sent[-1]["inbox_id"] == inbox
    assert "headers" not in fleet.vendors.agentmail.mail.sent[-1]
    forged = await pool.post(
        "/api/proxy/email/send",
        headers=fleet.proxy_auth(mine),
        json={"to": "friend@example.com", "text": "x", "from": "someone@agentmail.to"},
    )
    assert forged.status_code == 403, forged.text

    # A reply arrives; the agent lists and reads it, its attachment inlined, and labels it.
    reply_id = fleet.vendors.agentmail.mail.deliver(
        inbox, sender="friend@example.com", subject="re: hi", text="hello back", attachment=b"\x00pdf"
    )
    listed = await pool.get("/api/proxy/email/messages", headers=fleet.proxy_auth(mine), params={"limit": 10})
    assert reply_id in {m["message_id"] for m in listed.json()["messages"]}
    read = await pool.get(f"/api/proxy/email/messages/{reply_id}", headers=fleet.proxy_auth(mine))
    assert read.status_code == 200, read.text
    assert base64.b64decode(read.json()["attachments"][0]["content"]) == b"\x00pdf"
    labelled = await pool.patch(
        f"/api/proxy/email/messages/{reply_id}", headers=fleet.proxy_auth(mine), json={"add_labels": ["done"]}
    )
    assert "done" in labelled.json()["labels"]
    threads = await pool.get("/api/proxy/email/threads", headers=fleet.proxy_auth(mine))
    assert threads.status_code == 200 and threads.json()["count"] >= 1

    # Another instance cannot read it (its own inbox path: the vendor does not find it), nor with a
    # token of one instance and the id of another.
    theirs = await pool.get(f"/api/proxy/email/messages/{reply_id}", headers=fleet.proxy_auth(other))
    assert theirs.status_code in (403, 404), theirs.text
    swapped = await pool.get("/api/proxy/info", headers=fleet.proxy_auth(other, fleet.tokens[mine]))
    assert swapped.status_code == 401
    # A vendor answer that lacks the inbox is refused too (the original let it pass).
    fleet.vendors.agentmail.mail.messages[reply_id].pop("inbox_id")
    blind_mail = await pool.get(f"/api/proxy/email/messages/{reply_id}", headers=fleet.proxy_auth(mine))
    assert blind_mail.status_code == 403, blind_mail.text

    # SMS: from its own number (forced), a reply read back; another's message is refused.
    texted = await pool.post(
        "/api/proxy/sms/send",
        headers=fleet.proxy_auth(mine),
        json={"to": "+15550001111", "text": "hi", "messaging_profile_id": "evil", "webhook_url": "http://x"},
    )
    assert texted.status_code == 200, texted.text
    assert texted.json()["data"]["from"]["phone_number"] == phone
    forged_sms = await pool.post(
        "/api/proxy/sms/send",
        headers=fleet.proxy_auth(mine),
        json={"to": "+15550001111", "text": "x", "from": "+19999"},
    )
    assert forged_sms.status_code == 403
    reply_sms = fleet.vendors.telnyx.sms.deliver(sender="+15550001111", to=phone, text="hey")
    records = await pool.get(
        "/api/proxy/sms/records", headers=fleet.proxy_auth(mine), params={"filter[cld]": "+10000000000"}
    )
    assert records.status_code == 200, records.text
    assert [r["id"] for r in records.json()["data"]] == [reply_sms]
    got = await pool.get(f"/api/proxy/sms/messages/{reply_sms}", headers=fleet.proxy_auth(mine))
    assert got.status_code == 200 and got.json()["data"]["text"] == "hey"
    refused = await pool.get(f"/api/proxy/sms/messages/{reply_sms}", headers=fleet.proxy_auth(other))
    assert refused.status_code == 403
    # A vendor message that names no number at all is refused (the original let it pass).
    fleet.vendors.telnyx.sms.messages[reply_sms]["from"] = {}
    fleet.vendors.telnyx.sms.messages[reply_sms]["to"] = []
    blind = await pool.get(f"/api/proxy/sms/messages/{reply_sms}", headers=fleet.proxy_auth(mine))
    assert blind.status_code == 403

    # The rate limit: 5 sends per window in these settings; 4 were counted (refused forgeries count:
    # they were attempts), so one more goes and the next waits.
    fifth = await pool.post(
        "/api/proxy/sms/send", headers=fleet.proxy_auth(mine), json={"to": "+15550001111", "text": "x"}
    )
    assert fifth.status_code == 200, fifth.text
    limited = await pool.post(
        "/api/proxy/sms/send", headers=fleet.proxy_auth(mine), json={"to": "+15550001111", "text": "x"}
    )
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1

    # The event log names every call, without bodies.
    events = await pool.get(f"/api/pool/instances/{mine}/events", headers=OPERATOR)
    assert events.status_code == 200
    kinds = [e["kind"] for e in events.json()]
    assert {"proxy.email.send", "proxy.email.read", "proxy.sms.send", "proxy.sms.read", "proxy.info"} <= set(
        kinds
    )
    log_text = json.dumps(events.json())
    assert "hello back" not in log_text and "hey" not in log_text
    for answer in (info, sent, read, listed, texted, records, got, events):
        no_vendor_key(fleet, answer.text)


async def test_missing_email_answers_404_and_provision_on_demand(fleet: Fleet) -> None:
    mine = sorted(fleet.tokens)[0]
    gone = await fleet.pool.post("/api/proxy/email/unprovision", headers=fleet.proxy_auth(mine))
    assert gone.status_code == 200 and gone.json()["unprovisioned"] is True, gone.text
    again = await fleet.pool.post("/api/proxy/email/unprovision", headers=fleet.proxy_auth(mine))
    assert again.json()["unprovisioned"] is False
    missing = await fleet.pool.post(
        "/api/proxy/email/send", headers=fleet.proxy_auth(mine), json={"to": "a@b.c"}
    )
    assert missing.status_code == 404 and "error" in missing.json()
    made = await fleet.pool.post("/api/proxy/email/provision", headers=fleet.proxy_auth(mine))
    assert made.status_code == 200 and made.json()["provisioned"] is True, made.text
    same = await fleet.pool.post("/api/proxy/email/provision", headers=fleet.proxy_auth(mine))
    assert same.json() == {"email": made.json()["email"], "provisioned": False}
