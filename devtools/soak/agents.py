"""What the claimed agents do during the soak (issue 16): with their own credentials, as the production
images do, they use the service proxy (info, mail and SMS sends and reads) and, now and then, leave for
good through `POST /api/pool/self-destruct`. Their answers join the soak's, so a 5xx other than the
documented 502/503 is a violation; the leak check at the end covers what the self-destructs tore down."""

from __future__ import annotations

import random

import asyncpg
import httpx

from devtools.soak.invariants import Answer
from devtools.soak.system import POOL_ENCRYPTION_KEY, System
from shared.auth import SecretBox


class Agents:
    def __init__(self, system: System) -> None:
        self.system = system
        self._box = SecretBox(POOL_ENCRYPTION_KEY)

    async def token(self, instance_id: str) -> str | None:
        """The instance's own gateway token, as its env holds it (read back from the pool database)."""
        conn = await asyncpg.connect(self.system.pool_db)
        try:
            sealed = await conn.fetchval("SELECT gateway_token_enc FROM instances WHERE id = $1", instance_id)
        finally:
            await conn.close()
        return self._box.decrypt(sealed) if sealed else None

    async def use_tools(self, instance_id: str, rng: random.Random) -> list[Answer]:
        token = await self.token(instance_id)
        if token is None:
            return []
        headers = {"Authorization": f"Bearer {instance_id}:{token}"}
        calls: list[tuple[str, str, dict[str, object] | None]] = [
            ("GET", "/api/proxy/info", None),
            ("POST", "/api/proxy/email/send", {"to": "friend@example.com", "subject": "soak", "text": "hi"}),
            ("GET", "/api/proxy/email/messages", None),
            ("POST", "/api/proxy/sms/send", {"to": "+15550001111", "text": "hi", "from": "+10000000000"}),
            ("GET", "/api/proxy/sms/records", None),
            ("POST", "/api/pool/credits-check", {"instanceId": instance_id, "gatewayToken": token}),
        ]
        answers = []
        async with httpx.AsyncClient(base_url=self.system.pool.url, timeout=60.0) as http:
            for method, path, body in rng.sample(calls, rng.randint(2, len(calls))):
                answers.append(
                    await _ask(http, "proxy", method, path, body, headers if "/proxy/" in path else {})
                )
        return answers

    async def self_destruct(self, instance_id: str) -> list[Answer]:
        token = await self.token(instance_id)
        if token is None:  # gone meanwhile: the call is still made, and must be refused (401)
            token = "pool_gw_gone"
        body = {"instanceId": instance_id, "gatewayToken": token}
        async with httpx.AsyncClient(base_url=self.system.pool.url, timeout=60.0) as http:
            return [await _ask(http, "self_destruct", "POST", "/api/pool/self-destruct", body, {})]


async def _ask(
    http: httpx.AsyncClient, kind: str, method: str, path: str, body: object, headers: dict[str, str]
) -> Answer:
    try:
        response = await http.request(method, path, json=body, headers=headers)
    except httpx.TimeoutException as exc:
        return Answer(kind, None, error=f"timeout: {method} {path} {exc!r}")
    except httpx.HTTPError as exc:
        return Answer(kind, None, error=f"no answer: {method} {path} {exc!r}")
    return Answer(kind, response.status_code, error=f"{method} {path} {response.text[:200]}")
