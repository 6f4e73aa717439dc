"""A fake of AgentMail's inbox API, per specs/agentmail.md (client_id idempotency, error bodies),
served by a respx router in-process or over HTTP (devtools/vendor_fakes/server.py)."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import httpx

from devtools.vendor_fakes.agentmail_messages import AgentMailMessages
from devtools.vendor_fakes.vendor import Failures, Route, ago, bearer, install, iso, now

if TYPE_CHECKING:
    import respx

BASE_URL = "https://api.agentmail.to/v0"
CODES = {
    401: ("UnauthorizedError", "unknown_api_key"),
    404: ("NotFoundError", "not_found"),
    422: ("UnprocessableEntityError", "unprocessable"),
    429: ("TooManyRequestsError", "rate_limit_exceeded"),
    500: ("InternalServerError", "internal_error"),
    503: ("ServiceUnavailableError", "service_unavailable"),
}


def error(status: int, message: str = "error") -> httpx.Response:
    name, code = CODES.get(status, ("Error", "error"))
    body = {
        "name": name,
        "code": code,
        "message": message,
        "docs": f"https://docs.agentmail.to/errors#{code}",
    }
    headers = {"Retry-After": "0"} if status == 429 else {}
    return httpx.Response(status, json=body, headers=headers)


def taken(username: str) -> httpx.Response:
    suggestions = [f"{username}{n}" for n in (7096, 2689, 8578)]
    body = {
        "name": "IsTakenError",
        "code": "resource_taken",
        "message": "Inbox is taken",
        "fix": "The requested inbox is already in use. Retry with a different value.",
        "suggestions": suggestions,
        "docs": "https://docs.agentmail.to/errors#resource_taken",
    }
    return httpx.Response(403, json=body)


class FakeAgentMail:
    def __init__(
        self, api_key: str = "am_test_0123456789", domains: tuple[str, ...] = ("agentmail.to",)
    ) -> None:
        self.api_key = api_key
        self.domains = set(domains)
        self.inboxes: dict[str, dict[str, Any]] = {}
        self.by_client_id: dict[str, str] = {}
        # Usernames someone else holds: creating one answers 403 resource_taken.
        self.taken_usernames: set[str] = set()
        self.failures = Failures()
        self.created = 0
        self.deleted = 0
        # Messages, threads and attachments (the inboxes' contents).
        self.mail = AgentMailMessages(self)

    base_url = BASE_URL
    error = staticmethod(error)

    def routes(self) -> list[Route]:
        inbox = "/inboxes/(?P<inbox_id>[^/?]+)"
        return [
            Route("POST", "/inboxes", self._create),
            Route("GET", "/inboxes", self._list),
            Route("GET", inbox, self._get),
            Route("DELETE", inbox, self._delete),
            *self.mail.routes(),
        ]

    def install(self, router: respx.MockRouter) -> None:
        install(router, BASE_URL, self.routes())

    def inventory(self) -> list[str]:
        """The client_id (or address) of every inbox that exists."""
        return sorted(str(inbox["client_id"] or inbox["inbox_id"]) for inbox in self.inboxes.values())

    def add_inbox(
        self, username: str, *, client_id: str | None = None, created_at: datetime | None = None
    ) -> str:
        return str(self._make(username, "agentmail.to", client_id, created_at or now())["inbox_id"])

    def backdate(self, inbox_id: str, seconds: float) -> None:
        self.inboxes[inbox_id]["created_at"] = iso(ago(seconds))

    def _make(self, username: str, domain: str, client_id: str | None, created: datetime) -> dict[str, Any]:
        address = f"{username}@{domain}"
        inbox = {
            "pod_id": "pod_default",
            "inbox_id": address,
            "email": address,
            "display_name": None,
            "client_id": client_id,
            "updated_at": iso(created),
            "created_at": iso(created),
        }
        self.inboxes[address] = inbox
        if client_id:
            self.by_client_id[client_id] = address
        return inbox

    def _auth(self, request: httpx.Request, operation: str) -> httpx.Response | None:
        if bearer(request) != self.api_key:
            return error(401, "Unknown API key")
        injected = self.failures.next(operation)
        return error(injected) if injected else None

    def _create(self, request: httpx.Request) -> httpx.Response:
        if refused := self._auth(request, "create"):
            return refused
        body = json.loads(request.content) if request.content else {}
        client_id = body.get("client_id")
        if client_id and "@" in client_id:
            return httpx.Response(
                400,
                json={
                    "name": "ValidationError",
                    "code": "validation_error",
                    "message": "Invalid request",
                    "errors": [{"path": ["client_id"], "message": "must not contain @"}],
                },
            )
        if client_id and client_id in self.by_client_id and self.by_client_id[client_id] in self.inboxes:
            return httpx.Response(200, json=self.inboxes[self.by_client_id[client_id]])
        domain = body.get("domain") or "agentmail.to"
        if domain not in self.domains:
            return error(422, f"Domain {domain} is not verified")
        username = body.get("username") or f"agent{secrets.token_hex(4)}"
        if username in self.taken_usernames or f"{username}@{domain}" in self.inboxes:
            return taken(username)
        self.created += 1
        return httpx.Response(200, json=self._make(username, domain, client_id, now()))

    def _list(self, request: httpx.Request) -> httpx.Response:
        if refused := self._auth(request, "list"):
            return refused
        limit = int(request.url.params.get("limit", "10"))
        start = int(request.url.params.get("page_token", "0") or 0)
        ordered = sorted(self.inboxes.values(), key=lambda i: i["created_at"], reverse=True)
        page = ordered[start : start + limit]
        more = start + limit < len(ordered)
        body = {"count": len(page), "limit": limit, "inboxes": page}
        if more:
            body["next_page_token"] = str(start + limit)
        return httpx.Response(200, json=body)

    def _get(self, request: httpx.Request, inbox_id: str) -> httpx.Response:
        if refused := self._auth(request, "get"):
            return refused
        inbox = self.inboxes.get(unquote(inbox_id))
        return httpx.Response(200, json=inbox) if inbox else error(404, "Inbox not found")

    def _delete(self, request: httpx.Request, inbox_id: str) -> httpx.Response:
        if refused := self._auth(request, "delete"):
            return refused
        if self.inboxes.pop(unquote(inbox_id), None) is None:
            return error(404, "Inbox not found")
        self.deleted += 1
        return httpx.Response(204)
