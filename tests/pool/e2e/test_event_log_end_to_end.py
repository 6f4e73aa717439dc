"""The event log of an instance's whole life, with the pool's own loop and the real services app
(local provider, real runtime processes): its create asked and made, `starting → idle` with the
tick's reason, its claim, its crash (`claimed → crashed`, the reason the tick saw) and its removal;
and the tick leader's minute sample of the template behind the dashboard's pictures."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from pool.main import create_app
from pool.models import TemplateSample
from shared.db import make_engine, make_sessionmaker
from tests.pool.e2e.test_claim_end_to_end import AUTH, KEY
from tests.pool.tick.conftest import Services, pool_settings
from tests.support import serve, until

pytestmark = pytest.mark.slow


async def test_an_instances_life_is_in_its_event_log(services: Services, pool_db_url: str) -> None:
    settings = pool_settings(
        pool_db_url, services.url, min_idle=1, max_total=2, api_key=KEY, tick_enabled=True
    )
    async with (
        serve(create_app(settings)) as pool_url,
        httpx.AsyncClient(base_url=pool_url, timeout=60) as pool,
    ):

        async def log(instance_id: str) -> list[dict[str, Any]]:
            found = await pool.get(f"/api/pool/instances/{instance_id}/events", headers=AUTH)
            assert found.status_code == 200, found.text
            return list(reversed(found.json()))  # oldest first, as it happened

        async def idle_id() -> str | None:
            status = (await pool.get("/api/pool/status", headers=AUTH)).json()
            return next((i["id"] for i in status["instances"] if i["status"] == "idle"), None)

        first = await until(idle_id)
        life = await log(first)
        kinds = [e["kind"] for e in life]
        assert kinds[:2] == ["create.requested", "instance.created"], kinds
        assert life[0]["actor"] == "pool" and life[0]["summary"] == {"templateId": "default", "version": 1}
        promoted = [e for e in life if e["kind"] == "status.changed"]
        assert [(e["summary"]["from"], e["summary"]["to"]) for e in promoted] == [("starting", "idle")]
        assert promoted[0]["actor"] == "pool" and promoted[0]["summary"]["reason"]

        claimed = await pool.post(
            "/api/pool/claim", headers=AUTH, json={"agentName": "Ada", "instructions": "hi"}
        )
        assert claimed.status_code == 200, claimed.text
        assert claimed.json()["instanceId"] == first

        async def crashed() -> bool:
            return any(e["kind"] == "claim.claimed" for e in await log(first)) and any(
                e["kind"] == "status.changed" and e["summary"]["to"] == "crashed" for e in await log(first)
            )

        services.kill(first)
        await until(crashed)
        after = await log(first)
        # The claim entry is written off the claim's answer path, stamped when it happened.
        assert [e["kind"] for e in after][len(life) :] == ["claim.claimed", "status.changed"]
        crash = next(e for e in after if e["kind"] == "status.changed" and e["summary"]["to"] == "crashed")
        assert (
            crash["summary"]["from"] == "claimed" and crash["actor"] == "pool" and crash["summary"]["reason"]
        )

        dismissed = await pool.delete(f"/api/pool/instances/{first}", headers=AUTH)
        assert dismissed.status_code == 200, dismissed.text
        assert (await log(first))[-1]["kind"] == "instance.killed"

    # The leader sampled the default template at least once while this ran.
    engine = make_engine(pool_db_url, pool_size=1)
    try:
        async with make_sessionmaker(engine)() as session:
            samples = (await session.scalars(select(TemplateSample))).all()
    finally:
        await engine.dispose()
    assert samples and {s.template_id for s in samples} == {"default"}
    assert all(s.target == 1 for s in samples)
