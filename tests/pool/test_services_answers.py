"""Services' answers may grow: a field (or deploy state) a newer services adds must not blind an
older pool's tick. What services is asked to do stays strict: an unknown field there is an error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from pool.services_client import ServicesClient
from shared import schemas
from tests.support import serve

IID = "abcdefabcdef"
NEWER_BATCH: dict[str, Any] = {
    "observedAt": "2026-11-23T10:00:00Z",
    "instances": {
        IID: {
            "instanceId": IID,
            "url": "http://127.0.0.1:9",
            "deployStatus": "hibernating",
            "health": {"ok": True, "statusCode": 200, "ready": True, "region": "eu-west"},
            "createdAt": "2026-11-23T09:00:00Z",
            "zone": "b",
        }
    },
    "unprobed": [],
    "orphans": [{"ref": "x", "name": "agent-x", "kind": "project"}],
    "platformOk": True,
    "platforms": [{"name": "railway-shared", "ok": True}],
}


@pytest.fixture
async def newer_services() -> AsyncIterator[str]:
    app = FastAPI()

    @app.post("/status/batch")
    async def batch() -> JSONResponse:
        return JSONResponse(NEWER_BATCH)

    async with serve(app) as url:
        yield url


async def test_the_pool_parses_a_status_batch_with_fields_it_does_not_know(newer_services: str) -> None:
    client = ServicesClient(httpx.AsyncClient(base_url=newer_services), timeout=5.0)
    try:
        batch = await client.status_batch(timeout=5.0)
    finally:
        await client.aclose()
    seen = batch.instances[IID]
    assert (seen.url, seen.health and seen.health.ok, batch.platform_ok) == ("http://127.0.0.1:9", True, True)
    # A deploy state this pool does not know is passed on as is; decide() treats it as in progress.
    assert seen.deploy_status == "hibernating"
    assert [orphan.ref for orphan in batch.orphans] == ["x"]


ANSWERS: list[type[BaseModel]] = [
    schemas.ToolResource,
    schemas.InstanceAccepted,
    schemas.InstanceDestroyed,
    schemas.HealthProbe,
    schemas.InstanceObservation,
    schemas.PlatformOrphan,
    schemas.StatusBatch,
    schemas.OperationResult,
    schemas.ToolGrant,
    schemas.RegistryTool,
    schemas.Registry,
]
REQUESTS: list[tuple[type[BaseModel], dict[str, Any]]] = [
    (schemas.InstanceCreate, {"instanceId": IID, "name": "agent"}),
    (schemas.StatusBatchRequest, {}),
    (schemas.ConfigureRequest, {"variables": {"A": "1"}}),
    (schemas.RedeployRequest, {}),
]


@pytest.mark.parametrize("model", ANSWERS, ids=lambda model: model.__name__)
def test_every_answer_the_pool_parses_ignores_unknown_fields(model: type[BaseModel]) -> None:
    assert model.model_config.get("extra") == "ignore"


@pytest.mark.parametrize(("model", "body"), REQUESTS, ids=lambda value: getattr(value, "__name__", ""))
def test_requests_services_receives_reject_unknown_fields(
    model: type[BaseModel], body: dict[str, Any]
) -> None:
    model.model_validate(body)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        model.model_validate({**body, "surprise": 1})
