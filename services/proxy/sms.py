"""SMS through Telnyx, always from and about the instance's own number (specs/telnyx.md,
runtime-callbacks.md). `from` and the messaging profile are the proxy's; a record or message that
does not name the instance's number (or names no number at all) is not handed back."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from services.proxy.resources import Owned, body_of, call, vendor
from services.proxy.schemas import SmsSend
from services.tools.base import ToolProvider
from shared.errors import Forbidden, NotFound

# Record filters an instance may pass; the numbers (`cli` caller, `cld` called) are the proxy's.
RECORD_QUERY_PREFIXES = ("filter[", "page[", "sort")
NUMBER_FILTERS = ("filter[cli]", "filter[cld]", "filter[from]", "filter[to]")


def _number(owned: Owned) -> str:
    if owned.phone is None:
        raise NotFound("this instance has no phone number; provision one with POST /api/proxy/sms/provision")
    return owned.phone


async def send(tools: dict[str, ToolProvider], owned: Owned, body: SmsSend) -> tuple[int, Any]:
    provider, client = vendor(tools, "telnyx", "SMS")
    number = _number(owned)
    if body.sender and body.sender.strip() != number:
        raise Forbidden("an instance sends from its own number only")
    payload = {**body.vendor_body(), "from": number}
    profile = getattr(provider.settings, "messaging_profile_id", "")
    if profile:
        payload["messaging_profile_id"] = profile
    # Not retried: a repeated send is a second message.
    response = await call(client, "POST", "/messages", what="send SMS", json=payload, idempotent=False)
    return response.status_code, body_of(response)


def names_number(record: Any, number: str) -> bool:
    """Whether a message or detail record has `number` as its sender or one of its recipients."""
    if not isinstance(record, dict):
        return False
    numbers: list[Any] = [record.get("cli"), record.get("cld")]
    sender = record.get("from")
    numbers.append(sender.get("phone_number") if isinstance(sender, dict) else sender)
    recipients = record.get("to")
    for recipient in recipients if isinstance(recipients, list) else [recipients]:
        numbers.append(recipient.get("phone_number") if isinstance(recipient, dict) else recipient)
    return number in numbers


async def records(tools: dict[str, ToolProvider], owned: Owned, params: dict[str, str]) -> tuple[int, Any]:
    _, client = vendor(tools, "telnyx", "SMS")
    number = _number(owned)
    query = {
        name: value
        for name, value in params.items()
        if name.startswith(RECORD_QUERY_PREFIXES) and name not in NUMBER_FILTERS
    }
    query.setdefault("filter[record_type]", "messaging")
    # Inbound (the default, what the images poll): calls to our number; outbound: sent from it.
    side = "filter[cli]" if query.get("filter[direction]") == "outbound" else "filter[cld]"
    query[side] = number
    response = await call(client, "GET", "/detail_records", what="list SMS records", params=query)
    answer = body_of(response)
    if response.is_success and isinstance(answer, dict) and isinstance(answer.get("data"), list):
        answer["data"] = [record for record in answer["data"] if names_number(record, number)]
    return response.status_code, answer


async def read(tools: dict[str, ToolProvider], owned: Owned, message_id: str) -> tuple[int, Any]:
    _, client = vendor(tools, "telnyx", "SMS")
    number = _number(owned)
    response = await call(client, "GET", f"/messages/{quote(message_id, safe='')}", what="read SMS")
    answer = body_of(response)
    if not response.is_success:
        return response.status_code, answer
    data = answer.get("data") if isinstance(answer, dict) else None
    if not names_number(data, number):
        raise Forbidden("the message does not belong to this instance's number")
    return response.status_code, answer
