"""The messaging half of the Telnyx fake: `POST /v2/messages` (send from a number we hold),
`GET /v2/messages/{id}`, and `GET /v2/detail_records` (message detail records, `cli` the caller and
`cld` the called number), plus `deliver` for a test to send an SMS to one of our numbers.

A send from a number the account does not hold, or with another messaging profile than the
number's, is refused as Telnyx refuses it (40305 invalid `from`)."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import httpx

from devtools.vendor_fakes.vendor import Route, iso, now

if TYPE_CHECKING:
    from devtools.vendor_fakes.telnyx import FakeTelnyx


class TelnyxMessages:
    def __init__(self, fake: FakeTelnyx) -> None:
        self.fake = fake
        self.messages: dict[str, dict[str, Any]] = {}

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/messages", self._send),
            Route("GET", "/messages/(?P<message_id>[^/?]+)", self._get),
            Route("GET", "/detail_records", self._records),
        ]

    def deliver(self, *, sender: str, to: str, text: str) -> str:
        """An inbound SMS to one of our numbers (what a person's reply is)."""
        return str(self._store("inbound", sender, to, text, profile=None)["id"])

    def _store(self, direction: str, sender: str, to: str, text: str, profile: str | None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "record_type": "message",
            "direction": direction,
            "id": str(uuid.uuid4()),
            "type": "SMS",
            "messaging_profile_id": profile,
            "from": {"phone_number": sender, "carrier": "Telnyx", "line_type": "Wireless"},
            "to": [{"phone_number": to, "status": "queued" if direction == "outbound" else "delivered"}],
            "text": text,
            "parts": 1,
            "encoding": "GSM-7",
            "received_at": iso(now()),
            "errors": [],
        }
        self.messages[message["id"]] = message
        return message

    def _send(self, request: httpx.Request) -> httpx.Response:
        if refused := self.fake._auth(request, "send_message"):
            return refused
        body = json.loads(request.content or b"{}")
        sender, to = body.get("from"), body.get("to")
        held = {n["phone_number"]: n for n in self.fake.numbers.values()}
        if sender not in held:
            return _error(400, "40305", "Invalid 'from' address", "/from")
        if not to or not str(to).startswith("+"):
            return _error(400, "40310", "Invalid 'to' address", "/to")
        number_profile = held[sender].get("messaging_profile_id")
        profile = body.get("messaging_profile_id") or number_profile
        if number_profile and profile != number_profile:
            return _error(400, "40305", "The 'from' number is not on this messaging profile", "/from")
        message = self._store("outbound", sender, str(to), str(body.get("text") or ""), profile)
        return httpx.Response(200, json={"data": message})

    def _get(self, request: httpx.Request, message_id: str) -> httpx.Response:
        if refused := self.fake._auth(request, "get_message"):
            return refused
        message = self.messages.get(message_id)
        return httpx.Response(200, json={"data": message}) if message else self.fake.error(404)

    def _records(self, request: httpx.Request) -> httpx.Response:
        if refused := self.fake._auth(request, "detail_records"):
            return refused
        params = request.url.params
        if params.get("filter[record_type]") not in ("messaging", "message"):
            return _error(400, "10015", "filter[record_type] is required", "filter[record_type]")
        records = [_record(m) for m in self.messages.values()]
        for field in ("direction", "cli", "cld"):
            wanted = params.get(f"filter[{field}]")
            if wanted:
                records = [r for r in records if r[field] == wanted]
        size = int(params.get("page[size]", "20"))
        page = records[-size:][::-1]
        meta = {"page_number": 1, "page_size": size, "total_pages": 1, "total_results": len(records)}
        return httpx.Response(200, json={"data": page, "meta": meta})


def _record(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "record_type": "message_detail_record",
        "id": message["id"],
        "direction": message["direction"],
        "cli": message["from"]["phone_number"],
        "cld": message["to"][0]["phone_number"],
        "message_type": "SMS",
        "status": message["to"][0]["status"],
        "text": message["text"],
        "sent_at": message["received_at"],
        "created_at": message["received_at"],
    }


def _error(status: int, code: str, title: str, pointer: str) -> httpx.Response:
    body = {"errors": [{"code": code, "title": title, "detail": title, "source": {"pointer": pointer}}]}
    return httpx.Response(status, json=body)
