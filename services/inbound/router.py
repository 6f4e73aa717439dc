"""`POST /webhooks/agentmail` and `POST /webhooks/telnyx` (the vendors, authenticated by their
signatures) and `GET /webhooks/counts` (operator: what was delivered and refused)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from services.auth import OperatorAuth
from services.deps import BoxDep, HttpClientDep, SessionmakerDep, SettingsDep
from services.inbound import service
from services.inbound.service import Inbound, InboundCounters
from services.inbound.signatures import BadSignature, verify_svix, verify_telnyx
from shared.errors import AppError, BadRequest, Unauthorized, Unavailable
from shared.logging import get_logger

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Bad or missing vendor signature (counted)"},
    404: {"description": "No instance owns the recipient (counted)"},
    502: {"description": "The owning runtime refused or could not be reached (the vendor retries)"},
    503: {"description": "Webhooks of this vendor are not configured, or the owner cannot be notified yet"},
}
router = APIRouter(prefix="/webhooks", tags=["inbound"], responses=ERRORS)
log = get_logger("services.inbound")


def counters(request: Request) -> InboundCounters:
    found: InboundCounters = request.app.state.inbound_counters
    return found


async def _route(
    request: Request,
    vendor: str,
    inbound: Inbound | None,
    sessionmaker: Any,
    http: Any,
    box: Any,
    timeout: float,
) -> dict[str, Any]:
    count = counters(request)
    if inbound is None:
        count.note(vendor, "ignored")
        return {"ok": True, "ignored": True}
    try:
        answer = await service.deliver(sessionmaker, http, box, inbound, timeout=timeout)
    except AppError as exc:
        outcome = {404: "unknown_recipient", 503: "owner_not_ready"}.get(exc.status_code, "delivery_failed")
        count.note(vendor, outcome)
        log.warning("inbound.refused", vendor=vendor, reason=outcome)
        raise
    count.note(vendor, "duplicate" if answer.get("duplicate") else "delivered")
    return answer


def _verified(request: Request, vendor: str, check: Any) -> None:
    try:
        check()
    except BadSignature as exc:
        counters(request).note(vendor, "bad_signature")
        log.warning("inbound.refused", vendor=vendor, reason="bad_signature", why=str(exc))
        raise Unauthorized("bad webhook signature") from None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        raise BadRequest("the webhook body is not JSON") from None


@router.post("/agentmail")
async def agentmail(
    request: Request, settings: SettingsDep, sessionmaker: SessionmakerDep, http: HttpClientDep, box: BoxDep
) -> dict[str, Any]:
    """AgentMail (Svix-signed) events; `message.received` goes to the inbox's instance."""
    if not settings.agentmail_webhook_secret:
        counters(request).note("agentmail", "not_configured")
        raise Unavailable("AgentMail webhooks are not configured", retry_after=300)
    body = await request.body()
    secret, tolerance = settings.agentmail_webhook_secret, settings.webhook_tolerance_seconds
    _verified(request, "agentmail", lambda: verify_svix(secret, request.headers, body, tolerance=tolerance))
    inbound = service.parse_agentmail(_json(body), request.headers["svix-id"])
    return await _route(
        request, "agentmail", inbound, sessionmaker, http, box, settings.notify_timeout_seconds
    )


@router.post("/telnyx")
async def telnyx(
    request: Request, settings: SettingsDep, sessionmaker: SessionmakerDep, http: HttpClientDep, box: BoxDep
) -> dict[str, Any]:
    """Telnyx (Ed25519-signed) messaging events; `message.received` goes to the number's instance."""
    if not settings.telnyx_webhook_public_key:
        counters(request).note("telnyx", "not_configured")
        raise Unavailable("Telnyx webhooks are not configured", retry_after=300)
    body = await request.body()
    key, tolerance = settings.telnyx_webhook_public_key, settings.webhook_tolerance_seconds
    _verified(request, "telnyx", lambda: verify_telnyx(key, request.headers, body, tolerance=tolerance))
    inbound = service.parse_telnyx(_json(body))
    return await _route(request, "telnyx", inbound, sessionmaker, http, box, settings.notify_timeout_seconds)


@router.get("/counts", dependencies=[OperatorAuth])
async def counts(request: Request) -> dict[str, int]:
    """Webhooks this services process received, by vendor and outcome (delivered, duplicate, ignored,
    bad_signature, unknown_recipient, owner_not_ready, delivery_failed, not_configured)."""
    return dict(counters(request).counts)
