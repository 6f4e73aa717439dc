"""The tick's status batch is one attempt: a retry would repeat services' whole observation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from pool.services_client import ServicesClient
from shared.errors import TransientError, error_body
from shared.retry import RetryPolicy
from tests.support import serve


@pytest.fixture
async def slow_services() -> AsyncIterator[tuple[str, list[str]]]:
    calls: list[str] = []
    app = FastAPI()

    @app.post("/status/batch")
    async def batch() -> JSONResponse:
        calls.append("batch")
        if len(calls) == 1:
            await asyncio.sleep(1.0)
        return JSONResponse(error_body("Unavailable", "busy"), status_code=503)

    async with serve(app) as url:
        yield url, calls


async def test_a_timed_out_status_batch_is_not_retried(slow_services: tuple[str, list[str]]) -> None:
    url, calls = slow_services
    retry = RetryPolicy("services", attempts=3, backoff_seconds=0.01)
    client = ServicesClient(httpx.AsyncClient(base_url=url), timeout=5.0, retry=retry)
    try:
        with pytest.raises(TransientError, match="unreachable: ReadTimeout"):
            await client.status_batch(timeout=0.3)
        assert calls == ["batch"]
        # A 503 is not retried either: the next tick is the retry.
        with pytest.raises(Exception, match="busy"):
            await client.status_batch(timeout=5.0)
        assert calls == ["batch", "batch"]
    finally:
        await client.aclose()
