"""The vendor fakes over HTTP, for real processes: `/openrouter/...`, `/agentmail/...`, `/telnyx/...`
answer as the vendors' base URLs do (services points `OPENROUTER_BASE_URL` etc. at
`http://host:port/<vendor>`). The handlers are the respx fakes' own (`routes()`), so both serve one
behaviour; each request is rebuilt as an `httpx.Request` on the vendor's real base URL.

Each vendor has its own `Faults` (devtools/faults.py, salted by vendor name): reads are "query"
latency, writes "mutation"; 429 answers carry `Retry-After`; a 5xx is the vendor's own error shape;
a "timeout" is carried out and its answer held past the client's timeout.

Operator routes: `GET /_inventory` (what exists at each vendor: what a leak check compares with the
ledger), `GET /_faults` (injected faults by vendor and kind), `POST /_storm`
`{"vendor", "calls", "outcome": "429" | "error" | "timeout"}` (`calls: 0` ends a storm).

`python -m devtools.vendor_fakes.server --port P --profile realistic --time-scale 0.05 --seed 1`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as StarletteRoute

from devtools.faults import PROFILES, Faults, Outcome
from devtools.vendor_fakes.agentmail import FakeAgentMail
from devtools.vendor_fakes.openrouter import FakeOpenRouter
from devtools.vendor_fakes.telnyx import FakeTelnyx
from devtools.vendor_fakes.vendor import Route


class VendorFake(Protocol):
    base_url: str

    def routes(self) -> list[Route]: ...

    def inventory(self) -> list[str]: ...

    def error(self, status: int) -> httpx.Response: ...


@dataclass
class Vendors:
    openrouter: FakeOpenRouter = field(default_factory=FakeOpenRouter)
    agentmail: FakeAgentMail = field(default_factory=FakeAgentMail)
    telnyx: FakeTelnyx = field(default_factory=FakeTelnyx)

    def by_name(self) -> dict[str, VendorFake]:
        return {"openrouter": self.openrouter, "agentmail": self.agentmail, "telnyx": self.telnyx}

    def inventory(self) -> dict[str, list[str]]:
        return {name: fake.inventory() for name, fake in self.by_name().items()}


class VendorServer:
    def __init__(self, vendors: Vendors | None = None, faults: dict[str, Faults] | None = None) -> None:
        self.vendors = vendors or Vendors()
        names = self.vendors.by_name()
        self.faults = faults or {name: Faults() for name in names}
        self._routes = {
            name: [(route.method, re.compile(rf"^{route.path}$"), route.handler) for route in fake.routes()]
            for name, fake in names.items()
        }

    @classmethod
    def with_profile(cls, profile: str, *, time_scale: float = 1.0, seed: int = 0) -> VendorServer:
        faults = {
            name: Faults.named(profile, time_scale=time_scale, seed=seed, salt=name)
            for name in ("openrouter", "agentmail", "telnyx")
        }
        return cls(faults=faults)

    def injected(self) -> dict[str, dict[str, int]]:
        return {name: dict(faults.injected) for name, faults in self.faults.items()}

    async def handle(self, request: Request) -> Response:
        name, rest = request.path_params["vendor"], "/" + request.path_params["path"]
        fake = self.vendors.by_name().get(name)
        if fake is None:
            return JSONResponse({"error": "not_found", "detail": f"no vendor {name}"}, status_code=404)
        found = next(
            (
                (route, m)
                for route in self._routes[name]
                if route[0] == request.method and (m := route[1].match(rest))
            ),
            None,
        )
        if found is None:
            return _send(fake.error(404))
        (method, _pattern, handler), matched = found
        faults = self.faults[name]
        outcome: Outcome = "ok"
        if faults.active:
            await faults.delay("query" if method == "GET" else "mutation")
            outcome = faults.decide()
            if outcome == "429":
                answer = fake.error(429)
                answer.headers["Retry-After"] = f"{faults.retry_after:g}"
                return _send(answer)
            if outcome == "error":
                return _send(fake.error(faults.rng.choice((500, 503))))
        query = f"?{request.url.query}" if request.url.query else ""
        forwarded = httpx.Request(
            request.method,
            fake.base_url + rest + query,
            headers=[(k, v) for k, v in request.headers.items() if k.lower() != "host"],
            content=await request.body(),
        )
        answer = handler(forwarded, **matched.groupdict())
        if outcome == "timeout":
            await asyncio.sleep(faults.hang)
        return _send(answer)

    async def inventory(self, _request: Request) -> JSONResponse:
        return JSONResponse(self.vendors.inventory())

    async def injected_route(self, _request: Request) -> JSONResponse:
        return JSONResponse(self.injected())

    async def storm(self, request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        faults = self.faults.get(str(body.get("vendor")))
        if faults is None:
            return JSONResponse({"error": "not_found", "detail": "unknown vendor"}, status_code=404)
        calls = int(body.get("calls", 1))
        if calls == 0:
            faults.calm()
        faults.outage(calls, body.get("outcome", "429"))
        return JSONResponse({"queued": int(body.get("calls", 1))})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                StarletteRoute("/_inventory", self.inventory, methods=["GET"]),
                StarletteRoute("/_faults", self.injected_route, methods=["GET"]),
                StarletteRoute("/_storm", self.storm, methods=["POST"]),
                StarletteRoute(
                    "/{vendor}/{path:path}",
                    self.handle,
                    methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
                ),
            ]
        )


def _send(answer: httpx.Response) -> Response:
    headers = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "retry-after")}
    return Response(answer.content, status_code=answer.status_code, headers=headers)


def service_env(base: str, vendors: Vendors) -> dict[str, str]:
    """The settings that point services' plugins at this server (`base` = `http://host:port`)."""
    return {
        "OPENROUTER_BASE_URL": f"{base}/openrouter",
        "OPENROUTER_MANAGEMENT_KEY": vendors.openrouter.management_key,
        "AGENTMAIL_BASE_URL": f"{base}/agentmail",
        "AGENTMAIL_API_KEY": vendors.agentmail.api_key,
        "TELNYX_BASE_URL": f"{base}/telnyx",
        "TELNYX_API_KEY": vendors.telnyx.api_key,
        "TELNYX_MESSAGING_PROFILE_ID": "4001767e-ce0f-4cae-9d5f-0d5e636e7809",
    }


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8020)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="instant")
    parser.add_argument("--time-scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    server = VendorServer.with_profile(args.profile, time_scale=args.time_scale, seed=args.seed)
    print(f"vendor fakes: http://{args.host}:{args.port}/{{openrouter,agentmail,telnyx}}", flush=True)
    uvicorn.run(server.app(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
