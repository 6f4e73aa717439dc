"""Inputs the deep fuzz run found answered with a 500 (a database error); each is now a 4xx."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.config import Settings
from services.main import create_app
from tests.services.conftest import AUTH, running


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/pooled?kind=sp%00x"),  # PostgreSQL text cannot hold a NUL byte
        ("DELETE", "/pooled/653885583338803"),  # past the integer column's range
    ],
)
async def test_inputs_the_database_cannot_hold_are_422(
    services_db_url: str, tmp_path: Path, method: str, path: str
) -> None:
    settings = Settings(
        environment="test",
        database_url=services_db_url,
        api_key=AUTH["Authorization"].removeprefix("Bearer "),
        local_data_dir=str(tmp_path),
        sweep_interval_seconds=0,
    )
    async with running(create_app(settings)) as client:
        response = await client.request(method, path, headers=AUTH)
    assert response.status_code == 422, response.text
