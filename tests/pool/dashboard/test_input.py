"""Hostile input to the dashboard is a 4xx that changes nothing (issue 11, findings 4 and 13)."""

from __future__ import annotations

import httpx
import pytest

from tests.pool.dashboard.conftest import log_in, page_csrf


@pytest.mark.parametrize("action", ["kill", "dismiss", "recheck"])
async def test_a_nul_in_an_instance_id_is_422_not_a_database_error(
    client: httpx.AsyncClient, action: str
) -> None:
    await log_in(client)
    csrf = page_csrf((await client.get("/dashboard")).text)

    response = await client.post(f"/dashboard/instances/abc%00def/{action}", headers={"X-CSRF-Token": csrf})

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["path", "instance_id"]


@pytest.mark.parametrize(
    "field", [{"agentName": "A\u0000da"}, {"instructions": "hi\u0000"}, {"joinUrl": "https://x/\u0000"}]
)
async def test_a_launch_with_a_nul_is_422(client: httpx.AsyncClient, field: dict[str, str]) -> None:
    await log_in(client)
    csrf = page_csrf((await client.get("/dashboard")).text)

    response = await client.post(
        "/dashboard/launch",
        json={"agentName": "Ada", "instructions": "hi", **field},
        headers={"X-CSRF-Token": csrf},
    )

    assert response.status_code == 422, response.text
    assert "NUL" in response.text


async def test_the_pool_address_leads_to_the_dashboard(client: httpx.AsyncClient) -> None:
    response = await client.get("/")

    assert response.status_code == 307
    assert response.headers["location"] == "/dashboard"
