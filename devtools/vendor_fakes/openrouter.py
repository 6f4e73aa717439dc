"""A fake of OpenRouter's key management API, per specs/openrouter.md (shapes, codes, errors),
served by a respx router in-process or over HTTP (devtools/vendor_fakes/server.py)."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import TYPE_CHECKING, Any

import httpx

from devtools.vendor_fakes.vendor import Failures, Route, ago, bearer, install, iso, now

if TYPE_CHECKING:
    import respx

BASE_URL = "https://openrouter.ai/api/v1"
MESSAGES = {
    400: "Invalid request parameters",
    401: "Missing Authentication header",
    403: "Only management keys can perform this operation",
    404: "Resource not found",
    429: "Rate limit exceeded",
    500: "Internal Server Error",
}


def error(status: int) -> httpx.Response:
    body = {
        "error": {"code": status, "message": MESSAGES.get(status, "Error"), "metadata": None},
        "user_id": None,
    }
    headers = {"Retry-After": "0"} if status == 429 else {}
    return httpx.Response(status, json=body, headers=headers)


class FakeOpenRouter:
    def __init__(self, management_key: str = "or-mgmt-test-0123456789") -> None:
        self.management_key = management_key
        self.keys: dict[str, dict[str, Any]] = {}
        self.secrets: dict[str, str] = {}
        self.failures = Failures()
        self.created = 0
        self.deleted = 0

    base_url = BASE_URL
    error = staticmethod(error)

    def routes(self) -> list[Route]:
        key = "/keys/(?P<key_hash>[^/?]+)"
        return [
            Route("POST", "/keys", self._create),
            Route("GET", "/keys", self._list),
            Route("GET", key, self._get),
            Route("PATCH", key, self._patch),
            Route("DELETE", key, self._delete),
        ]

    def install(self, router: respx.MockRouter) -> None:
        install(router, BASE_URL, self.routes())

    def inventory(self) -> list[str]:
        """The name of every key that exists."""
        return [str(name) for name in self.names()]

    def add_key(self, name: str, *, created_at: datetime | None = None) -> str:
        """A key made outside the code under test (another system's, or an orphan of ours)."""
        return str(self._make(name, None, created_at or now())["hash"])

    def backdate(self, key_hash: str, seconds: float) -> None:
        self.keys[key_hash]["created_at"] = iso(ago(seconds))

    def names(self) -> list[str]:
        return sorted(key["name"] for key in self.keys.values())

    def _make(self, name: str, limit: float | None, created_at: datetime) -> dict[str, Any]:
        key_hash = secrets.token_hex(32)
        zero = {f: 0.0 for f in ("usage", "usage_daily", "usage_weekly", "usage_monthly")}
        zero |= {f"byok_{f}": 0.0 for f in ("usage", "usage_daily", "usage_weekly", "usage_monthly")}
        self.keys[key_hash] = {
            "hash": key_hash,
            "name": name,
            "label": name,
            "disabled": False,
            "limit": limit,
            "limit_remaining": limit,
            "limit_reset": None,
            "include_byok_in_limit": False,
            **zero,
            "created_at": iso(created_at),
            "updated_at": None,
            "expires_at": None,
            "creator_user_id": None,
            "workspace_id": "8d6b6a3e-6d2c-4f3a-9a55-0c1c0c1c0c1c",
        }
        self.secrets[key_hash] = "sk-or-v1-" + secrets.token_hex(32)
        return self.keys[key_hash]

    def _auth(self, request: httpx.Request, operation: str) -> httpx.Response | None:
        token = bearer(request)
        if token is None:
            return error(401)
        if token != self.management_key:
            return error(403 if token.startswith("sk-or-") else 401)
        injected = self.failures.next(operation)
        return error(injected) if injected else None

    def _create(self, request: httpx.Request) -> httpx.Response:
        if refused := self._auth(request, "create"):
            return refused
        body = json.loads(request.content or b"{}")
        if not isinstance(body.get("name"), str) or not body["name"]:
            return error(400)
        key = self._make(body["name"], body.get("limit"), now())
        self.created += 1
        return httpx.Response(201, json={"data": key, "key": self.secrets[key["hash"]]})

    def _list(self, request: httpx.Request) -> httpx.Response:
        if refused := self._auth(request, "list"):
            return refused
        include_disabled = request.url.params.get("include_disabled", "false") == "true"
        offset = int(request.url.params.get("offset", "0"))
        keys = [k for k in self.keys.values() if include_disabled or not k["disabled"]]
        keys.sort(key=lambda k: k["created_at"], reverse=True)
        return httpx.Response(200, json={"data": keys[offset : offset + 100]})

    def _get(self, request: httpx.Request, key_hash: str) -> httpx.Response:
        if refused := self._auth(request, "get"):
            return refused
        key = self.keys.get(key_hash)
        return httpx.Response(200, json={"data": key}) if key else error(404)

    def _patch(self, request: httpx.Request, key_hash: str) -> httpx.Response:
        if refused := self._auth(request, "patch"):
            return refused
        key = self.keys.get(key_hash)
        if key is None:
            return error(404)
        body = json.loads(request.content or b"{}")
        allowed = {"name", "disabled", "limit", "limit_reset", "include_byok_in_limit"}
        if not set(body) <= allowed:
            return error(400)
        key.update(body)
        if "limit" in body:
            key["limit_remaining"] = body["limit"]
        key["updated_at"] = iso(now())
        return httpx.Response(200, json={"data": key})

    def _delete(self, request: httpx.Request, key_hash: str) -> httpx.Response:
        if refused := self._auth(request, "delete"):
            return refused
        if self.keys.pop(key_hash, None) is None:
            return error(404)
        self.deleted += 1
        return httpx.Response(200, json={"deleted": True})
