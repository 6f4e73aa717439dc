"""Many agent instances in one in-process server, for claim tests that need hundreds of them.

Each instance lives under `/i/{instance_id}` and answers the instance contract (DESIGN.md §4)
like `runtime/` does: bearer check with its own token, 409 once bound, reset makes it clean.
Knobs per instance: `fail_provision` (500), `stay_dirty` (reset does not clean), `provision_delay`,
`reset_delay` and `status_delay` (slow `/convos/reset` and `/convos/status`).
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


@dataclass
class FakeAgent:
    token: str
    conversation_id: str | None = None
    invite_url: str | None = None
    pending: bool = False
    fail_provision: bool = False
    stay_dirty: bool = False
    join_pending: bool = False
    provision_delay: float = 0.0
    reset_delay: float = 0.0
    status_delay: float = 0.0
    provisions: int = 0
    resets: int = 0


@dataclass
class FakeFleet:
    agents: dict[str, FakeAgent] = field(default_factory=dict)
    base_url: str = ""

    def add(self, instance_id: str, **knobs: Any) -> FakeAgent:
        agent = FakeAgent(token=f"pool_gw_{secrets.token_urlsafe(16)}", **knobs)
        self.agents[instance_id] = agent
        return agent

    def url(self, instance_id: str) -> str:
        return f"{self.base_url}/i/{instance_id}"

    def bound(self) -> dict[str, str]:
        return {iid: a.conversation_id for iid, a in self.agents.items() if a.conversation_id is not None}


def _error(status: int, name: str, detail: str) -> JSONResponse:
    return JSONResponse({"error": name, "detail": detail}, status_code=status)


def create_fleet_app(fleet: FakeFleet) -> FastAPI:
    app = FastAPI()

    def authorised(request: Request, agent: FakeAgent) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), agent.token.encode())

    @app.get("/i/{instance_id}/pool/health")
    async def health(instance_id: str) -> JSONResponse:
        if instance_id not in fleet.agents:
            return _error(404, "NotFound", "no such instance")
        return JSONResponse({"ready": True, "version": "fake", "runtime": "fake-fleet"})

    @app.post("/i/{instance_id}/pool/provision")
    async def provision(instance_id: str, request: Request) -> JSONResponse:
        agent = fleet.agents.get(instance_id)
        if agent is None:
            return _error(404, "NotFound", "no such instance")
        if not authorised(request, agent):
            return _error(401, "Unauthorized", "invalid bearer token")
        body = await request.json()
        if not body.get("agentName"):
            return _error(400, "BadRequest", "agentName is required")
        agent.provisions += 1
        if agent.conversation_id is not None:
            return _error(409, "Conflict", f"already bound to {agent.conversation_id}")
        if agent.provision_delay:
            await asyncio.sleep(agent.provision_delay)
        if agent.fail_provision:
            # A failed provision may leave a half-made conversation behind, as real ones do.
            agent.conversation_id = f"conv_half_{secrets.token_hex(4)}"
            return _error(500, "ProvisionFailed", "provisioning failed")
        join_url = body.get("joinUrl")
        agent.conversation_id = f"conv_{secrets.token_hex(8)}"
        agent.invite_url = join_url or f"https://convos.example/i/{agent.conversation_id}"
        agent.pending = bool(join_url) and agent.join_pending
        if join_url is None:
            status = "created"
        else:
            status = "pending_acceptance" if agent.pending else "joined"
        return JSONResponse(
            {
                "ok": True,
                "conversationId": agent.conversation_id,
                "inviteUrl": agent.invite_url,
                "joined": status == "joined",
                "status": status,
            }
        )

    @app.get("/i/{instance_id}/convos/status")
    async def status(instance_id: str, request: Request) -> JSONResponse:
        agent = fleet.agents.get(instance_id)
        if agent is None or not authorised(request, agent):
            return _error(401, "Unauthorized", "invalid bearer token")
        if agent.status_delay:
            await asyncio.sleep(agent.status_delay)
        return JSONResponse(
            {
                "conversationId": agent.conversation_id,
                "inboxId": None,
                "pending": agent.pending,
                "clean": agent.conversation_id is None,
            }
        )

    @app.post("/i/{instance_id}/convos/reset")
    async def reset(instance_id: str, request: Request) -> JSONResponse:
        agent = fleet.agents.get(instance_id)
        if agent is None or not authorised(request, agent):
            return _error(401, "Unauthorized", "invalid bearer token")
        agent.resets += 1
        if agent.reset_delay:
            await asyncio.sleep(agent.reset_delay)
        if not agent.stay_dirty:
            agent.conversation_id = None
            agent.invite_url = None
            agent.pending = False
        return JSONResponse({"ok": True, "reset": True})

    return app
