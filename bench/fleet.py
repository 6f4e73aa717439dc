"""A fake fleet: ONE process answering the instance contract (DESIGN.md §4) for any number of
instance ids, so benchmarks can have thousands of instances without thousands of processes.

Routing: `/i/{instance_id}/pool/health` (path prefix), or any path on one of the extra ports an
instance was registered on (`POST /_register`), which is how the fake Railway's domains
(`127.0.0.1:<port>`) reach it. Tokens are derived from a seed (`token_for`), so rows can be
written for ids the fleet has never seen; a registered instance uses the token it was given.

Knobs: `provision_delay` (the runtime's provision time) and `health_latency`. Admin routes:
`GET /_stats` (provisions per instance and the fleet's own provision durations, so a benchmark
can subtract the runtime's time from the claim's), `POST /_reset`, `POST /_config`.

`python -m bench.fleet --port P --extra-ports N` prints one JSON line `{"port", "ports"}` once
listening. It is a raw ASGI app: framework overhead here would be charged to the pool.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import secrets
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

DEFAULT_SEED = "bench-fleet-seed"


def token_for(seed: str, instance_id: str) -> str:
    digest = hmac.new(seed.encode(), instance_id.encode(), hashlib.sha256).hexdigest()
    return f"pool_gw_{digest[:32]}"


@dataclass
class Agent:
    token: str
    conversation_id: str | None = None
    ready_at: float = 0.0
    provisions: int = 0


@dataclass
class Fleet:
    seed: str = DEFAULT_SEED
    provision_delay: float = 0.0
    health_latency: float = 0.0
    agents: dict[str, Agent] = field(default_factory=dict)
    by_port: dict[int, str] = field(default_factory=dict)
    provision_ms: dict[str, float] = field(default_factory=dict)

    def agent(self, instance_id: str) -> Agent:
        found = self.agents.get(instance_id)
        if found is None:
            found = self.agents[instance_id] = Agent(token_for(self.seed, instance_id))
        return found

    def reset(self) -> None:
        self.agents.clear()
        self.provision_ms.clear()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Send, status: int, body: Any) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _authorised(scope: Scope, agent: Agent) -> bool:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode().partition(" ")
            return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), agent.token.encode())
    return False


class FleetApp:
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith("/_"):
            await self._admin(scope, receive, send, path)
            return
        instance_id, rest = self._route(scope, path)
        if instance_id is None:
            await _send(send, 404, {"error": "NotFound", "detail": "no such instance"})
            return
        await self._contract(scope, receive, send, instance_id, rest)

    def _route(self, scope: Scope, path: str) -> tuple[str | None, str]:
        if path.startswith("/i/"):
            instance_id, _, rest = path[3:].partition("/")
            return instance_id, "/" + rest
        server = scope.get("server")
        port = server[1] if server else None
        return self.fleet.by_port.get(port) if port is not None else None, path

    async def _contract(
        self, scope: Scope, receive: Receive, send: Send, instance_id: str, rest: str
    ) -> None:
        fleet, method = self.fleet, scope["method"]
        agent = fleet.agent(instance_id)
        if rest == "/pool/health" and method == "GET":
            if fleet.health_latency:
                await asyncio.sleep(fleet.health_latency)
            if time.monotonic() < agent.ready_at:
                await _send(send, 503, {"ready": False})
                return
            await _send(send, 200, {"ready": True, "version": "bench", "runtime": "bench-fleet"})
            return
        if not _authorised(scope, agent):
            await _send(send, 401, {"error": "Unauthorized", "detail": "invalid bearer token"})
            return
        if rest == "/pool/provision" and method == "POST":
            await self._provision(receive, send, instance_id, agent)
        elif rest == "/convos/status" and method == "GET":
            clean = agent.conversation_id is None
            body = {
                "conversationId": agent.conversation_id,
                "inboxId": None,
                "pending": False,
                "clean": clean,
            }
            await _send(send, 200, body)
        elif rest == "/convos/reset" and method == "POST":
            agent.conversation_id = None
            await _send(send, 200, {"ok": True, "reset": True})
        else:
            await _send(send, 404, {"error": "NotFound", "detail": f"no route {method} {rest}"})

    async def _provision(self, receive: Receive, send: Send, instance_id: str, agent: Agent) -> None:
        started = time.perf_counter()
        body = json.loads(await _read_body(receive) or b"{}")
        agent.provisions += 1
        if agent.conversation_id is not None:
            await _send(send, 409, {"error": "Conflict", "detail": "already bound"})
            return
        if not body.get("agentName"):
            await _send(send, 400, {"error": "BadRequest", "detail": "agentName is required"})
            return
        if self.fleet.provision_delay:
            await asyncio.sleep(self.fleet.provision_delay)
        agent.conversation_id = f"conv_{secrets.token_hex(8)}"
        answer = {
            "ok": True,
            "conversationId": agent.conversation_id,
            "inviteUrl": f"https://convos.example/i/{agent.conversation_id}",
            "joined": False,
            "status": "created",
        }
        self.fleet.provision_ms[instance_id] = (time.perf_counter() - started) * 1000
        await _send(send, 200, answer)

    async def _admin(self, scope: Scope, receive: Receive, send: Send, path: str) -> None:
        fleet = self.fleet
        body = json.loads(await _read_body(receive) or b"{}") if scope["method"] == "POST" else {}
        if path == "/_stats":
            provisions = {i: a.provisions for i, a in fleet.agents.items() if a.provisions}
            await _send(send, 200, {"provisions": provisions, "provisionMs": fleet.provision_ms})
        elif path == "/_reset":
            fleet.reset()
            await _send(send, 200, {"ok": True})
        elif path == "/_config":
            fleet.provision_delay = float(body.get("provisionDelay", fleet.provision_delay))
            fleet.health_latency = float(body.get("healthLatency", fleet.health_latency))
            await _send(send, 200, {"ok": True})
        elif path == "/_register":
            agent = Agent(token=body["token"], ready_at=time.monotonic() + float(body.get("readyIn", 0)))
            fleet.agents[body["instanceId"]] = agent
            fleet.by_port[int(body["port"])] = body["instanceId"]
            await _send(send, 200, {"ok": True})
        else:
            await _send(send, 404, {"error": "NotFound", "detail": path})


def bind(port: int = 0) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listening socket says TCP, and without it Nagle + delayed ACK add 40 ms to every answer.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


async def serve(fleet: Fleet, sockets: list[socket.socket]) -> None:
    config = uvicorn.Config(
        FleetApp(fleet), log_level="warning", access_log=False, lifespan="off", backlog=2048
    )
    server = uvicorn.Server(config)
    await server.serve(sockets=sockets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--extra-ports", type=int, default=0, help="ports for Host-routed instances")
    parser.add_argument("--seed", default=DEFAULT_SEED)
    parser.add_argument("--provision-delay", type=float, default=0.0, help="seconds")
    parser.add_argument("--health-latency", type=float, default=0.0, help="seconds")
    args = parser.parse_args(argv)
    sockets = [bind(args.port)] + [bind() for _ in range(args.extra_ports)]
    ports = [int(s.getsockname()[1]) for s in sockets]
    fleet = Fleet(seed=args.seed, provision_delay=args.provision_delay, health_latency=args.health_latency)
    sys.stdout.write(json.dumps({"port": ports[0], "ports": ports[1:]}) + "\n")
    sys.stdout.flush()
    asyncio.run(serve(fleet, sockets))


if __name__ == "__main__":
    main()
