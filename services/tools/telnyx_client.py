"""Telnyx API v2 calls the number plugin makes, with typed errors (specs/telnyx.md §6)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from pydantic import BaseModel

from services.tools.vendor import VendorClient
from shared.errors import PermanentError, TransientError, UpstreamError
from shared.http import RETRYABLE_STATUS

PAGE_SIZE = 250


class TelnyxError(UpstreamError):
    """Base of Telnyx failures."""


class TelnyxAuthError(PermanentError, TelnyxError):
    """401/403: the API key is wrong or lacks rights."""


class TelnyxRejected(PermanentError, TelnyxError):
    """400/422: the request is wrong (bad profile id, bad filter)."""


class TelnyxUnavailable(TransientError, TelnyxError):
    """429 and 5xx."""


class TelnyxNotYetThere(TransientError, TelnyxError):
    """404 on a number we just bought: Telnyx has not caught up yet."""


class TelnyxNoNumbers(TransientError, TelnyxError):
    """The search found nothing to buy."""


class TelnyxOrderFailed(TransientError, TelnyxError):
    """The order ended in `failure` or did not finish in time; another number may work."""


class OrderLine(BaseModel):
    phone_number: str
    status: str = "pending"


class NumberOrder(BaseModel):
    id: str
    status: str
    phone_numbers: list[OrderLine]


class PhoneNumber(BaseModel):
    id: str
    phone_number: str
    status: str = ""
    customer_reference: str | None = None
    created_at: str | None = None
    purchased_at: str | None = None


def error_from(response: httpx.Response, what: str) -> TelnyxError:
    try:
        first = response.json()["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("detail") or first.get("title") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        code, message = "", response.text[:200]
    detail = f"telnyx {what} answered {response.status_code} {code}: {message}"
    status = response.status_code
    if status == 404:
        return TelnyxNotYetThere(detail)
    if status in (401, 403):
        return TelnyxAuthError(detail)
    if status in RETRYABLE_STATUS or status >= 500:
        return TelnyxUnavailable(detail)
    return TelnyxRejected(detail)


class TelnyxClient(VendorClient):
    name = "telnyx"

    async def _call(self, method: str, url: str, what: str, **kwargs: Any) -> Any:
        response = await self.request(method, url, timeout=self.timeout, **kwargs)
        if not response.is_success:
            raise error_from(response, what)
        return response.json()

    async def search(self, *, country: str, limit: int) -> list[str]:
        params = {"filter[country_code]": country, "filter[features]": "sms", "filter[limit]": limit}
        body = await self._call("GET", "/available_phone_numbers", "search numbers", params=params)
        return [str(item["phone_number"]) for item in body.get("data", [])]

    async def order_first_available(
        self, *, country: str, limit: int, customer_reference: str
    ) -> NumberOrder:
        candidates = await self.search(country=country, limit=limit)
        if not candidates:
            raise TelnyxNoNumbers(f"telnyx has no {country} numbers with sms to buy")
        # Not retried: a repeated order could buy a second number.
        body = await self._call(
            "POST",
            "/number_orders",
            "order number",
            json={
                "phone_numbers": [{"phone_number": candidates[0]}],
                "customer_reference": customer_reference,
            },
        )
        return NumberOrder.model_validate(body["data"])

    async def wait_for_order(self, order_id: str, *, poll: float, timeout: float) -> NumberOrder:
        deadline = time.monotonic() + timeout
        while True:
            body = await self._call("GET", f"/number_orders/{order_id}", "get order")
            order = NumberOrder.model_validate(body["data"])
            if order.status == "success":
                return order
            if order.status == "failure":
                raise TelnyxOrderFailed(f"telnyx order {order_id} failed")
            if time.monotonic() >= deadline:
                raise TelnyxOrderFailed(f"telnyx order {order_id} still {order.status} after {timeout}s")
            await asyncio.sleep(poll)

    async def find_number(self, e164: str) -> PhoneNumber:
        body = await self._call("GET", "/phone_numbers", "find number", params={"filter[phone_number]": e164})
        if not body.get("data"):
            raise TelnyxNotYetThere(f"telnyx does not list {e164} yet")
        return PhoneNumber.model_validate(body["data"][0])

    async def assign_profile(self, number_id: str, profile_id: str) -> None:
        # Setting the same profile twice is harmless, so the base may retry it.
        await self._call(
            "PATCH",
            f"/phone_numbers/{number_id}/messaging",
            "assign messaging profile",
            json={"messaging_profile_id": profile_id},
            idempotent=True,
        )

    async def release(self, number_id: str) -> bool:
        """True if released, False if it was already gone."""
        response = await self.request("DELETE", f"/phone_numbers/{number_id}", timeout=self.timeout)
        if response.status_code == 404:
            return False
        if not response.is_success:
            raise error_from(response, "release number")
        return True

    async def list_numbers(self) -> list[PhoneNumber]:
        numbers: list[PhoneNumber] = []
        page = 1
        while True:
            params = {"page[number]": page, "page[size]": PAGE_SIZE}
            body = await self._call("GET", "/phone_numbers", "list numbers", params=params)
            numbers.extend(PhoneNumber.model_validate(item) for item in body.get("data", []))
            total_pages = int((body.get("meta") or {}).get("total_pages") or 1)
            if page >= total_pages:
                return numbers
            page += 1
