"""The production images' callbacks replayed exactly as specs/runtime-callbacks.md shows them (body auth
on /api/pool/*, Bearer <instanceId>:<gatewayToken> on /api/proxy/*, and our own Bearer form), with the
answers' shapes checked; self-destruct leaves nothing behind at the vendors."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.pool.callbacks.conftest import OPERATOR, Fleet

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def test_callbacks_answer_the_images_shapes_in_both_auth_forms(fleet: Fleet) -> None:
    mine, other = sorted(fleet.tokens)
    pool = fleet.pool

    info = await pool.post("/api/pool/self-info", json=fleet.body_auth(mine))
    assert info.status_code == 200, info.text
    assert {"runtimeVersion", "runtimeImage", "templateVersion"} <= info.json().keys()
    bearer = await pool.post(
        "/api/pool/self-info",
        json={"instanceId": mine},
        headers={"Authorization": f"Bearer {fleet.tokens[mine]}"},
    )
    assert bearer.status_code == 200
    # One instance's token is worth nothing for another, in either form.
    crossed = await pool.post(
        "/api/pool/self-info", json={"instanceId": other, "gatewayToken": fleet.tokens[mine]}
    )
    assert crossed.status_code == 401
    assert (await pool.post("/api/pool/credits-check", json={"instanceId": mine})).status_code == 401

    credits = await pool.post("/api/pool/credits-check", json=fleet.body_auth(mine))
    assert credits.status_code == 200, credits.text
    assert set(credits.json()) == {"limit", "usage", "remaining", "limitReset"}
    # Increment 20, cap 30 in these settings: 5 → 25 → 30 → 409.
    first = await pool.post("/api/pool/credits-topup", json=fleet.body_auth(mine))
    assert first.status_code == 200, first.text
    assert first.json() == {
        "ok": True,
        "previousLimit": credits.json()["limit"],
        "newLimit": credits.json()["limit"] + 20,
    }
    second = await pool.post("/api/pool/credits-topup", json=fleet.body_auth(mine))
    assert second.json()["newLimit"] == 30
    capped = await pool.post("/api/pool/credits-topup", json=fleet.body_auth(mine))
    assert capped.status_code == 409 and "error" in capped.json()

    coupon = await pool.post("/api/pool/redeem-coupon", json=fleet.body_auth(mine, code="FREE"))
    assert coupon.status_code == 404 and coupon.json()["ok"] is False

    # pending-acceptance in the images' body form: authenticated (409: this instance is idle, not pending).
    pending = await pool.post(
        "/api/pool/pending-acceptance/complete", json=fleet.body_auth(mine, conversationId="c1", error=None)
    )
    assert pending.status_code == 409, pending.text
    failed = await pool.post(
        "/api/pool/pending-acceptance/fail",
        json=fleet.body_auth(mine, conversationId="c1", error="timed out"),
    )
    assert failed.status_code == 409, failed.text

    proxy = await pool.get("/api/proxy/info", headers=fleet.proxy_auth(mine))
    assert set(proxy.json()) == {"instanceId", "email", "phone"}
    status = await pool.get("/api/proxy/services/status", params={"instanceId": mine}, headers=OPERATOR)
    assert status.json() == proxy.json()
    assert (
        await pool.get("/api/proxy/info", headers={"Authorization": f"Bearer {fleet.tokens[mine]}"})
    ).status_code == 401

    # Self-destruct: 2xx at once, then the normal destroy; nothing of it is left at any vendor (the
    # loop may refill meanwhile, so its own inbox, number and key are checked, not the counts).
    gone = await pool.post("/api/pool/self-destruct", json=fleet.body_auth(mine))
    assert gone.status_code == 200 and gone.json()["ok"] is True

    def leftovers() -> list[str]:
        vendors = fleet.vendors
        return [
            *([proxy.json()["email"]] if proxy.json()["email"] in vendors.agentmail.inboxes else []),
            *([proxy.json()["phone"]] if proxy.json()["phone"] in vendors.telnyx.owned() else []),
            *[name for name in vendors.openrouter.inventory() if name.endswith(mine)],
        ]

    deadline = time.monotonic() + 30
    while leftovers():
        assert time.monotonic() < deadline, leftovers()
        await asyncio.sleep(0.2)
    # The pool's row goes last, once services tore the platform down.
    while mine in {a["id"] for a in (await pool.get("/api/pool/instances", headers=OPERATOR)).json()}:
        assert time.monotonic() < deadline, "the instance row outlived its destroy"
        await asyncio.sleep(0.2)
    events = (await pool.get(f"/api/pool/instances/{mine}/events", headers=OPERATOR)).json()
    assert "callback.self_destruct" in {e["kind"] for e in events}
