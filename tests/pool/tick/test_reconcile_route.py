"""`POST /api/pool/reconcile` runs a tick on the leader, and on any other replica says so (409)
instead of answering as if a tick had run."""

from __future__ import annotations

import re

import httpx

from pool.main import create_app
from tests.pool.tick.conftest import pool_settings
from tests.support import free_port, serve

AUTH = {"Authorization": "Bearer test-pool-key"}
DEAD_SERVICES = f"http://127.0.0.1:{free_port()}"


async def test_reconcile_runs_on_the_leader_and_is_a_409_naming_the_leader_elsewhere(
    pool_db_url: str,
) -> None:
    leader_settings = pool_settings(
        pool_db_url, DEAD_SERVICES, api_key="test-pool-key", min_idle=0, tick_interval_seconds=30
    )
    follower_settings = leader_settings.model_copy(update={"tick_enabled": False})
    async with serve(create_app(leader_settings)) as leader_url, httpx.AsyncClient(headers=AUTH) as http:
        ran = await http.post(f"{leader_url}/api/pool/reconcile")
        assert ran.status_code == 200, ran.text
        assert ran.json()["ran"] is True
        assert ran.json()["result"]["error"].startswith("services unreachable")

        async with serve(create_app(follower_settings)) as follower_url:
            refused = await http.post(f"{follower_url}/api/pool/reconcile")
            assert refused.status_code == 409, refused.text
            body = refused.json()
            assert body["kind"] == "Conflict"
            assert re.fullmatch(
                r"this replica is not the leader; the leader \(.+:\d+:[0-9a-f]+\) ticks every 30 s, "
                r"last \d+ s ago",
                body["detail"],
            ), body

    # The leader is gone (its lock went with its connection): the former follower ticks itself.
    async with serve(create_app(follower_settings)) as follower_url, httpx.AsyncClient(headers=AUTH) as http:
        ran = await http.post(f"{follower_url}/api/pool/reconcile")
        assert ran.status_code == 200, ran.text
        assert ran.json()["result"]["error"].startswith("services unreachable")
