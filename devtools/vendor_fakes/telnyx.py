"""A fake of Telnyx number search, orders, numbers and messaging, per specs/telnyx.md, served by a
respx router in-process or over HTTP (devtools/vendor_fakes/server.py).

Orders finish asynchronously (`pending` for `order_polls` reads, then `success`); a number bought
twice fails its order; a fresh number can 404 for `hidden_lookups` reads, as the real one does.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from devtools.vendor_fakes.telnyx_messages import TelnyxMessages
from devtools.vendor_fakes.vendor import Failures, Route, ago, bearer, install, iso, now

if TYPE_CHECKING:
    import respx

BASE_URL = "https://api.telnyx.com/v2"
TITLES = {
    401: ("10009", "Authentication failed"),
    404: ("10005", "Resource not found"),
    422: ("10015", "Bad Request"),
    429: ("10011", "Too many requests"),
    500: ("10007", "Unexpected error"),
}


def error(status: int, detail: str = "") -> httpx.Response:
    code, title = TITLES.get(status, ("10001", "Error"))
    body = {
        "errors": [
            {
                "code": code,
                "title": title,
                "detail": detail or title,
                "meta": {"url": f"https://developers.telnyx.com/docs/overview/errors/{code}"},
            }
        ]
    }
    headers = {"Retry-After": "0"} if status == 429 else {}
    return httpx.Response(status, json=body, headers=headers)


class FakeTelnyx:
    def __init__(
        self, api_key: str = "KEY_telnyx_test_0123456789", *, order_polls: int = 1, hidden_lookups: int = 0
    ) -> None:
        self.api_key = api_key
        self.order_polls = order_polls
        self.hidden_lookups = hidden_lookups
        self.numbers: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self._pending_reads: dict[str, int] = {}
        self._hidden: dict[str, int] = {}
        self.failures = Failures()
        self.created = 0
        self.deleted = 0
        self.failed_orders = 0
        self._next_id = 1293384261075731000
        # Messages and their detail records (send, read, inbound).
        self.sms = TelnyxMessages(self)
        self._market = [f"+1970555{n:04d}" for n in range(1000)]

    base_url = BASE_URL
    error = staticmethod(error)

    def routes(self) -> list[Route]:
        number = r"/phone_numbers/(?P<number_id>\d+)"
        return [
            Route("GET", "/available_phone_numbers", self._search),
            Route("POST", "/number_orders", self._order),
            Route("GET", "/number_orders/(?P<order_id>[^/?]+)", self._get_order),
            Route("GET", "/phone_numbers", self._list),
            Route("PATCH", number + "/messaging", self._messaging),
            Route("DELETE", number, self._release),
            *self.sms.routes(),
        ]

    def install(self, router: respx.MockRouter) -> None:
        install(router, BASE_URL, self.routes())

    def inventory(self) -> list[str]:
        """`<e164> <customer_reference>` of every number held."""
        return sorted(f"{n['phone_number']} {n['customer_reference']}" for n in self.numbers.values())

    def add_number(
        self, e164: str, *, customer_reference: str | None, created_at: datetime | None = None
    ) -> str:
        return str(self._make(e164, customer_reference, "active", created_at or now())["id"])

    def backdate(self, number_id: str, seconds: float) -> None:
        self.numbers[number_id]["purchased_at"] = self.numbers[number_id]["created_at"] = iso(ago(seconds))

    def owned(self) -> set[str]:
        return {n["phone_number"] for n in self.numbers.values()}

    def _make(self, e164: str, reference: str | None, status: str, created: datetime) -> dict[str, Any]:
        self._next_id += 1
        number: dict[str, Any] = {
            "id": str(self._next_id),
            "record_type": "phone_number",
            "phone_number": e164,
            "status": status,
            "phone_number_type": "local",
            "country_iso_alpha2": "US",
            "tags": [],
            "external_pin": None,
            "deletion_lock_enabled": False,
            "customer_reference": reference,
            "messaging_profile_id": None,
            "created_at": iso(created),
            "purchased_at": iso(created),
        }
        self.numbers[number["id"]] = number
        return number

    def _auth(self, request: httpx.Request, operation: str) -> httpx.Response | None:
        if bearer(request) != self.api_key:
            return error(401, "The API key is invalid")
        injected = self.failures.next(operation)
        return error(injected) if injected else None

    def _search(self, request: httpx.Request) -> httpx.Response:
        if refused := self._auth(request, "search"):
            return refused
        limit = int(request.url.params.get("filter[limit]", "10"))
        owned = self.owned()
        free = [e164 for e164 in self._market if e164 not in owned][:limit]
        data = [
            {
                "record_type": "available_phone_number",
                "phone_number": e164,
                "vanity_format": "",
                "best_effort": False,
                "quickship": True,
                "reservable": True,
                "region_information": [{"region_type": "country_code", "region_name": "US"}],
                "cost_information": {"upfront_cost": "1.00", "monthly_cost": "1.00", "currency": "USD"},
                "features": [{"name": "sms"}, {"name": "voice"}],
            }
            for e164 in free
        ]
        return httpx.Response(
            200, json={"data": data, "metadata": {"total_results": len(data), "best_effort_results": 0}}
        )

    def _order(self, request: httpx.Request) -> httpx.Response:
        if refused := self._auth(request, "order"):
            return refused
        body = json.loads(request.content)
        lines = body.get("phone_numbers") or []
        if not lines:
            return error(422, "phone_numbers is required")
        order_id = str(uuid.uuid4())
        owned, result_lines = self.owned(), []
        for line in lines:
            e164 = line["phone_number"]
            status = "failure" if e164 in owned else "pending"
            if status == "pending":
                made = self._make(e164, body.get("customer_reference"), "purchase-pending", now())
                self._hidden[made["id"]] = self.hidden_lookups
                self.created += 1
            result_lines.append(
                {
                    "id": str(uuid.uuid4()),
                    "record_type": "number_order_phone_number",
                    "phone_number": e164,
                    "status": status,
                    "requirements_met": True,
                }
            )
        failed = all(line["status"] == "failure" for line in result_lines)
        self.failed_orders += failed
        order = {
            "id": order_id,
            "record_type": "number_order",
            "status": "failure" if failed else "pending",
            "phone_numbers_count": len(lines),
            "requirements_met": True,
            "customer_reference": body.get("customer_reference"),
            "phone_numbers": result_lines,
            "created_at": iso(now()),
            "updated_at": iso(now()),
        }
        self.orders[order_id] = order
        self._pending_reads[order_id] = self.order_polls
        return httpx.Response(200, json={"data": order})

    def _get_order(self, request: httpx.Request, order_id: str) -> httpx.Response:
        if refused := self._auth(request, "get_order"):
            return refused
        order = self.orders.get(order_id)
        if order is None:
            return error(404)
        if order["status"] == "pending":
            self._pending_reads[order_id] -= 1
            if self._pending_reads[order_id] < 0:
                order["status"] = "success"
                for line in order["phone_numbers"]:
                    line["status"] = "success"
                    for number in self.numbers.values():
                        if number["phone_number"] == line["phone_number"]:
                            number["status"] = "active"
        return httpx.Response(200, json={"data": order})

    def _visible(self, number_id: str) -> bool:
        if self._hidden.get(number_id, 0) > 0:
            self._hidden[number_id] -= 1
            return False
        return True

    def _list(self, request: httpx.Request) -> httpx.Response:
        if refused := self._auth(request, "list"):
            return refused
        wanted = request.url.params.get("filter[phone_number]")
        numbers = [n for n in self.numbers.values() if wanted is None or n["phone_number"] == wanted]
        if wanted is not None:
            numbers = [n for n in numbers if self._visible(n["id"])]
        page, size = (
            int(request.url.params.get("page[number]", "1")),
            int(request.url.params.get("page[size]", "20")),
        )
        total_pages = max(1, -(-len(numbers) // size))
        meta = {
            "page_number": page,
            "page_size": size,
            "total_pages": total_pages,
            "total_results": len(numbers),
        }
        return httpx.Response(200, json={"data": numbers[(page - 1) * size : page * size], "meta": meta})

    def _messaging(self, request: httpx.Request, number_id: str) -> httpx.Response:
        if refused := self._auth(request, "messaging"):
            return refused
        number = self.numbers.get(number_id)
        if number is None or not self._visible(number_id):
            return error(404, "Phone number not found")
        profile = json.loads(request.content).get("messaging_profile_id")
        if profile is not None:
            number["messaging_profile_id"] = profile or None
        data = {
            "id": number_id,
            "record_type": "messaging_settings",
            "phone_number": number["phone_number"],
            "messaging_profile_id": number["messaging_profile_id"],
            "type": "long-code",
            "country_code": "US",
        }
        return httpx.Response(200, json={"data": data})

    def _release(self, request: httpx.Request, number_id: str) -> httpx.Response:
        if refused := self._auth(request, "release"):
            return refused
        number = self.numbers.pop(number_id, None)
        if number is None:
            return error(404, "Phone number not found")
        self.deleted += 1
        return httpx.Response(200, json={"data": {**number, "status": "deleted"}})
