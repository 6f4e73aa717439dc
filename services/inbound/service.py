"""Route an inbound mail or SMS to the instance that owns the inbox or number, and hand it to that
instance's runtime (`POST /convos/notify`, its own gateway token as the bearer).

Why the gateway token: it is the one credential every runtime already checks on the pool's calls, and
services has it (encrypted, `instance_infra.gateway_token_enc`, written when the create is accepted), so
the runtime needs nothing new. A delivery is recorded (`inbound_deliveries`) once the runtime took it,
so a vendor's retry of it is answered without a second notification."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.models import InboundDelivery, InstanceInfra, InstanceService
from shared.auth import SecretBox
from shared.errors import NotFound, Unavailable, UpstreamError
from shared.http import call_timeout
from shared.logging import get_logger

log = get_logger("services.inbound")
Sessionmaker = async_sessionmaker[AsyncSession]


@dataclass
class InboundCounters:
    """Outcomes of the webhooks this process received, by vendor and outcome (`GET /webhooks/counts`).
    Per process: each replica counts what it received; the log line of each refusal says the same."""

    counts: Counter[str] = field(default_factory=Counter)

    def note(self, vendor: str, outcome: str) -> None:
        self.counts[f"{vendor}.{outcome}"] += 1


@dataclass(frozen=True)
class Inbound:
    vendor: str  # "agentmail" | "telnyx"
    delivery_id: str
    recipient: str  # the inbox address or the E.164 number it was sent to
    notice: dict[str, Any]  # what the runtime is told (no vendor key, no raw payload)


def parse_agentmail(payload: Any, delivery_id: str) -> Inbound | None:
    """A `message.received` event, or None for any other event type (acknowledged, not routed)."""
    if not isinstance(payload, dict) or payload.get("event_type") != "message.received":
        return None
    message = payload.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("inbox_id"), str):
        raise NotFound("the event names no inbox")
    notice = {
        "kind": "email",
        "eventId": payload.get("event_id") or delivery_id,
        "inbox": message["inbox_id"],
        "messageId": message.get("message_id"),
        "threadId": message.get("thread_id"),
        "from": message.get("from"),
        "subject": message.get("subject"),
        "preview": message.get("preview"),
    }
    return Inbound("agentmail", delivery_id, message["inbox_id"], notice)


def parse_telnyx(payload: Any) -> Inbound | None:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict) or data.get("event_type") != "message.received":
        return None
    raw = data.get("payload")
    inner: dict[str, Any] = raw if isinstance(raw, dict) else {}
    recipients = [to.get("phone_number") for to in inner.get("to") or [] if isinstance(to, dict)]
    sender = inner.get("from")
    if not recipients or not isinstance(recipients[0], str) or not isinstance(data.get("id"), str):
        raise NotFound("the event names no recipient number")
    notice = {
        "kind": "sms",
        "eventId": data["id"],
        "messageId": inner.get("id"),
        "from": sender.get("phone_number") if isinstance(sender, dict) else None,
        "to": recipients[0],
        "text": inner.get("text"),
    }
    return Inbound("telnyx", data["id"], recipients[0], notice)


async def owner_of(session: AsyncSession, inbound: Inbound) -> InstanceInfra | None:
    query = select(InstanceService.instance_id).where(
        InstanceService.tool_id == inbound.vendor, InstanceService.status == "active"
    )
    if inbound.vendor == "agentmail":
        query = query.where(InstanceService.resource_id == inbound.recipient)
    else:
        query = query.where(InstanceService.resource_meta["phone_number"].astext == inbound.recipient)
    instance_id = await session.scalar(query.limit(1))
    return await session.get(InstanceInfra, instance_id) if instance_id else None


async def deliver(
    sessionmaker: Sessionmaker, http: httpx.AsyncClient, box: SecretBox, inbound: Inbound, *, timeout: float
) -> dict[str, Any]:
    """Hand `inbound` to its instance once. 404 unknown recipient; 503 owner not reachable yet; 502 the
    runtime refused or failed (the vendor retries those)."""
    async with sessionmaker() as session:
        if await session.get(InboundDelivery, inbound.delivery_id) is not None:
            return {"ok": True, "duplicate": True}
        owner = await owner_of(session, inbound)
    if owner is None:
        raise NotFound("no instance owns this recipient")
    if not owner.url or not owner.gateway_token_enc:
        raise Unavailable(f"instance {owner.instance_id} cannot be notified yet", retry_after=30)
    token = box.decrypt(owner.gateway_token_enc)
    try:
        response = await http.post(
            owner.url.rstrip("/") + "/convos/notify",
            json=inbound.notice,
            headers={"Authorization": f"Bearer {token}"},
            timeout=call_timeout(timeout),
        )
    except httpx.TransportError as exc:
        raise UpstreamError(f"instance {owner.instance_id} unreachable: {type(exc).__name__}") from exc
    if not response.is_success:
        raise UpstreamError(f"instance {owner.instance_id} answered {response.status_code}")
    async with sessionmaker.begin() as session:
        await session.execute(insert(InboundDelivery).values(id=inbound.delivery_id).on_conflict_do_nothing())
        # A day covers the vendors' retry schedules; older ids are never asked about again.
        await session.execute(
            delete(InboundDelivery).where(InboundDelivery.at < func.now() - text("interval '1 day'"))
        )
    log.info("inbound.delivered", vendor=inbound.vendor, instance_id=owner.instance_id)
    return {"ok": True, "instanceId": owner.instance_id}
