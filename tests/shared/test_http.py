"""shared.http.ApiClient: each call's own timeout, retries by the client's policy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from shared.errors import TransientError
from shared.http import ApiClient
from shared.retry import RetryPolicy
from tests.support import serve

FAST = RetryPolicy("test", attempts=3, backoff_seconds=0.01, max_retry_after_seconds=0.05)


@pytest.fixture
async def remote() -> AsyncIterator[tuple[str, list[str], list[int]]]:
    """Answers each request with the next status planned (200 once the plan is used up)."""
    app = FastAPI()
    seen: list[str] = []
    plan: list[int] = []

    @app.api_route("/thing", methods=["GET", "POST"])
    async def thing(request: Request) -> JSONResponse:
        seen.append(request.method)
        if request.query_params.get("slow"):
            await asyncio.sleep(float(request.query_params["slow"]))
        status = plan.pop(0) if plan else 200
        return JSONResponse({"ok": status == 200}, status_code=status, headers={"Retry-After": "1"})

    async with serve(app) as url:
        yield url, seen, plan


async def test_the_calls_timeout_wins_over_the_clients_default(
    remote: tuple[str, list[str], list[int]],
) -> None:
    url, _, _ = remote
    async with httpx.AsyncClient(base_url=url, timeout=0.2) as shared:
        client = ApiClient(shared, retry=FAST)
        response = await client.request("GET", "/thing", timeout=5.0, params={"slow": "0.6"})
        assert response.status_code == 200
        with pytest.raises(TransientError, match="ReadTimeout"):
            await client.request("GET", "/thing", timeout=0.2, params={"slow": "0.6"})


async def test_a_get_is_retried_after_503_with_retry_after_capped(
    remote: tuple[str, list[str], list[int]],
) -> None:
    url, seen, plan = remote
    plan.extend([503, 429])
    async with httpx.AsyncClient(base_url=url) as shared:
        response = await ApiClient(shared, retry=FAST).request("GET", "/thing", timeout=5.0)
    assert response.status_code == 200
    assert seen == ["GET", "GET", "GET"]


async def test_a_post_is_sent_once_unless_idempotent(remote: tuple[str, list[str], list[int]]) -> None:
    url, seen, plan = remote
    async with httpx.AsyncClient(base_url=url) as shared:
        client = ApiClient(shared, retry=FAST)
        plan.append(503)
        assert (await client.request("POST", "/thing", timeout=5.0)).status_code == 503
        assert seen == ["POST"]
        plan.append(503)
        assert (await client.request("POST", "/thing", timeout=5.0, idempotent=True)).status_code == 200
        assert seen == ["POST", "POST", "POST"]


async def test_the_last_answer_is_returned_when_attempts_run_out(
    remote: tuple[str, list[str], list[int]],
) -> None:
    url, seen, plan = remote
    plan.extend([502, 502, 502, 502])
    async with httpx.AsyncClient(base_url=url) as shared:
        response = await ApiClient(shared, retry=FAST).request("GET", "/thing", timeout=5.0)
    assert response.status_code == 502
    assert len(seen) == 3
