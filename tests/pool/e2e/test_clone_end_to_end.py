"""Cloning on the local provider: the pool app (its loop running) and the services app over real
HTTP, real runtime processes. The clone answers with the source's memory in a conversation of its
own; a runtime without export answers 409 and nothing changes; a failed import leaves the source
as it was and the target recovered (reset, clean, idle again)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from pool.main import create_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from shared.errors import error_body
from tests.pool.e2e.clone_support import (
    AUTH,
    KEY,
    NOTES,
    Runtimes,
    assert_cloned,
    claimed_source,
    idle,
    instances,
)
from tests.pool.tick.conftest import pool_settings
from tests.support import serve, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


@contextlib.asynccontextmanager
async def product(
    services_settings: ServicesSettings, pool_db_url: str, runtime_env: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """Services (every runtime started with `runtime_env`) and the pool, warm with two idle."""
    settings = services_settings.model_copy(update={"local_runtime_env": runtime_env or {}})
    async with serve(create_services_app(settings)) as services_url:
        pool_config = pool_settings(
            pool_db_url, services_url, min_idle=2, max_total=4, api_key=KEY, tick_enabled=True
        )
        async with (
            serve(create_app(pool_config)) as pool_url,
            httpx.AsyncClient(base_url=pool_url, timeout=60) as pool,
        ):
            await until(lambda: idle(pool, 2))
            yield pool


async def test_a_clone_answers_with_the_source_state_in_a_conversation_of_its_own(
    services_settings: ServicesSettings, pool_db_url: str
) -> None:
    runtimes = Runtimes(pool_db_url)
    async with product(services_settings, pool_db_url) as pool:
        source = await claimed_source(pool, runtimes)
        await until(lambda: idle(pool, 1))
        clone = await assert_cloned(pool, runtimes, source)

        # A clone of the clone carries the same memory on, one generation further.
        await until(lambda: idle(pool, 1))
        grandchild = await pool.post(f"/api/pool/instances/{clone['instanceId']}/clone", headers=AUTH)
        assert grandchild.status_code == 200, grandchild.text
        assert grandchild.json()["parentInstance"] == clone["instanceId"]
        assert await runtimes.notes(grandchild.json()["instanceId"]) == NOTES

        # Only a claimed agent can be cloned; an unknown id is a 404.
        await until(lambda: idle(pool, 1))
        idle_id = next(i for i, row in (await instances(pool)).items() if row["status"] == "idle")
        refused = await pool.post(f"/api/pool/instances/{idle_id}/clone", headers=AUTH)
        assert refused.status_code == 409, refused.text
        assert "only a claimed agent can be cloned" in refused.json()["detail"]
        unknown = await pool.post("/api/pool/instances/000000000000/clone", headers=AUTH)
        assert unknown.status_code == 404, unknown.text


async def test_a_runtime_without_export_answers_409_and_nothing_changes(
    services_settings: ServicesSettings, pool_db_url: str
) -> None:
    runtimes = Runtimes(pool_db_url)
    async with product(services_settings, pool_db_url, {"RUNTIME_CAPABILITIES": "[]"}) as pool:
        source = await claimed_source(pool, runtimes)
        await until(lambda: idle(pool, 2))
        before = {i: row["status"] for i, row in (await instances(pool)).items()}
        refused = await pool.post(f"/api/pool/instances/{source['instanceId']}/clone", headers=AUTH)
        assert refused.status_code == 409, refused.text
        assert refused.json() == error_body(
            "Conflict",
            "the source instance's runtime cannot be cloned from: it does not announce `export` in "
            "/pool/health (it announces: none)",
        )
        assert {i: row["status"] for i, row in (await instances(pool)).items()} == before
        assert await runtimes.notes(source["instanceId"]) == NOTES


async def test_a_failed_import_leaves_the_source_untouched_and_the_target_recovered(
    services_settings: ServicesSettings, pool_db_url: str
) -> None:
    runtimes = Runtimes(pool_db_url)
    async with product(services_settings, pool_db_url, {"RUNTIME_FAIL_IMPORT": "true"}) as pool:
        source = await claimed_source(pool, runtimes)
        await until(lambda: idle(pool, 2))
        failed = await pool.post(f"/api/pool/instances/{source['instanceId']}/clone", headers=AUTH)
        assert failed.status_code == 502, failed.text
        assert "/convos/import answered 500" in failed.json()["detail"]

        rows = await instances(pool)
        assert rows[source["instanceId"]]["status"] == "claimed"
        assert await runtimes.notes(source["instanceId"]) == NOTES
        assert (await runtimes.status(source["instanceId"]))["conversationId"] == source["conversationId"]
        # The target was reset by the recovery: idle, clean, nothing of the source's memory left.
        (target,) = [i for i, row in rows.items() if (row["lastError"] or "").startswith("clone failed")]
        assert (rows[target]["status"], rows[target]["parentInstance"]) == ("idle", None)
        assert (await runtimes.status(target))["clean"] is True
        assert await runtimes.notes(target) == []
