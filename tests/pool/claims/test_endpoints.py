"""The lean claim endpoints (pool.claims.endpoints) answer exactly as the FastAPI declarations of the
same routes (pool.claims.router), which describe them in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.claims import endpoints
from pool.config import Settings
from pool.main import create_app
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH, FakeServices, running
from tests.pool.factories import add_fleet_instances

JSON = {**AUTH, "Content-Type": "application/json"}
BODY = b'{"agentName": "Ada", "instructions": "Be kind."}'

# (path, query, headers, body): every way the inputs can be refused, before any instance is touched.
REFUSED: list[tuple[str, str, dict[str, str], bytes]] = [
    ("/api/pool/claim", "", {"Content-Type": "application/json"}, BODY),
    ("/api/pool/claim", "", {"Authorization": "Bearer wrong", "Content-Type": "application/json"}, BODY),
    ("/api/pool/claim", "", JSON, b"{not json"),
    ("/api/pool/claim", "", {"Content-Type": "application/json"}, b"{not json"),
    ("/api/pool/claim", "", JSON, b""),
    ("/api/pool/claim", "", JSON, b"[1, 2]"),
    ("/api/pool/claim", "", JSON, b'{"agentName": "", "metadata": {"a": NaN}}'),
    ("/api/pool/claim", "", JSON, b'{"joinUrl": "ftp://x", "ownerId": "no spaces"}'),
    ("/api/pool/claim", "", AUTH, BODY),
    ("/api/pool/claim", "", {**AUTH, "Content-Type": "text/plain"}, BODY),
    ("/api/pool/claim", "wait=soon", JSON, BODY),
    ("/api/pool/claim", "wait=-1", JSON, BODY),
    ("/api/pool/claim", "wait=999999", JSON, BODY),
    ("/api/pool/claim", "wait=x", {**JSON, "Idempotency-Key": "has space"}, b"{not json"),
    ("/api/pool/claims", "", {"Content-Type": "application/json"}, BODY),
    ("/api/pool/claims", "", JSON, b'{"priority": 5000, "timeoutSeconds": 0}'),
    ("/api/pool/claims", "", {**JSON, "Idempotency-Key": "x" * 201}, BODY),
    ("/api/pool/claims", "", {**JSON, "Content-Type": "application/vnd.claim+json; charset=utf-8"}, b"{"),
    ("/api/pool/claims", "", JSON, b'{"timeoutSeconds": 99999999}'),
]


def declared_only(app: FastAPI) -> FastAPI:
    """The app as it was before the lean endpoints: FastAPI's declarations serve the claim."""
    app.router.routes[:] = [route for route in app.router.routes if route not in endpoints.ROUTES]
    return app


@pytest.fixture
def apps(make_settings: Callable[..., Settings], fake_services: FakeServices) -> tuple[FastAPI, FastAPI]:
    settings = make_settings(services_url=fake_services.url)
    return create_app(settings), declared_only(create_app(settings))


@pytest.mark.parametrize(("path", "query", "headers", "body"), REFUSED)
async def test_a_refused_claim_gets_the_declared_routes_answer(
    apps: tuple[FastAPI, FastAPI], path: str, query: str, headers: dict[str, str], body: bytes
) -> None:
    answers: list[tuple[int, Any]] = []
    for app in apps:
        async with running(app) as client:
            response = await client.post(f"{path}?{query}", content=body, headers=headers)
        answers.append((response.status_code, response.json()))
    lean, declared = answers
    assert 400 <= lean[0] < 500
    assert lean == declared


async def test_both_serve_a_claim_and_a_ticket_alike(
    apps: tuple[FastAPI, FastAPI], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 4)
    shapes = []
    for app in apps:
        async with running(app) as client:
            claimed = await client.post("/api/pool/claim", content=BODY, headers=JSON)
            ticket = await client.post("/api/pool/claims", content=BODY, headers=JSON)
        assert (claimed.status_code, ticket.status_code) == (200, 202), (claimed.text, ticket.text)
        assert claimed.headers["content-type"] == ticket.headers["content-type"] == "application/json"
        assert ticket.json()["claim"]["agentName"] == "Ada"
        shapes.append((sorted(claimed.json()), sorted(ticket.json()), ticket.json()["status"]))
    assert shapes[0] == shapes[1]


def test_the_schema_still_describes_both_routes(apps: tuple[FastAPI, FastAPI]) -> None:
    lean, declared = (app.openapi()["paths"] for app in apps)
    for path in ("/api/pool/claim", "/api/pool/claims"):
        assert lean[path]["post"] == declared[path]["post"]
    parameters = {p["name"] for p in lean["/api/pool/claim"]["post"]["parameters"]}
    assert {"wait", "idempotency-key"} <= parameters
