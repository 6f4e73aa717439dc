"""What the clone's end-to-end tests share: a claimed agent given a memory through its own runtime,
and reading an instance's runtime (memory, status) as the instance itself would be asked."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import select

from pool.models import Instance
from shared.auth import SecretBox
from shared.db import make_engine, make_sessionmaker

KEY = "test-pool-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# tests.pool.tick.conftest.pool_settings' key: the tests decrypt gateway tokens with it.
POOL_ENCRYPTION_KEY = "test-pool-encryption"
SOURCE = {
    "agentName": "Ada",
    "instructions": "Remember what you are told.",
    "metadata": {"team": "research"},
    "ownerId": "owner-7",
}
NOTES = ["the user's name is Grace", "she prefers short answers"]


async def idle(pool: httpx.AsyncClient, n: int) -> bool:
    return int((await pool.get("/api/pool/counts", headers=AUTH)).json()["idle"]) >= n


class Runtimes:
    """An instance's runtime, reached as the pool reaches it (its URL and own gateway token)."""

    def __init__(self, pool_db_url: str) -> None:
        self._url = pool_db_url
        self._box = SecretBox(POOL_ENCRYPTION_KEY)

    async def address(self, instance_id: str) -> tuple[str, dict[str, str]]:
        engine = make_engine(self._url)
        try:
            async with make_sessionmaker(engine)() as session:
                row = (await session.scalars(select(Instance).where(Instance.id == instance_id))).one()
        finally:
            await engine.dispose()
        assert row.url is not None and row.gateway_token_enc is not None
        return row.url, {"Authorization": f"Bearer {self._box.decrypt(row.gateway_token_enc)}"}

    async def call(self, instance_id: str, method: str, path: str, **kwargs: Any) -> Any:
        url, headers = await self.address(instance_id)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as runtime:
            response = await runtime.request(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    async def notes(self, instance_id: str) -> list[str]:
        return [note["text"] for note in (await self.call(instance_id, "GET", "/convos/memory"))["notes"]]

    async def status(self, instance_id: str) -> dict[str, Any]:
        return dict(await self.call(instance_id, "GET", "/convos/status"))

    async def remember(self, instance_id: str, *notes: str) -> None:
        for note in notes:
            await self.call(instance_id, "POST", "/convos/memory", json={"text": note})


async def claimed_source(pool: httpx.AsyncClient, runtimes: Runtimes) -> dict[str, Any]:
    """A claimed agent whose runtime remembers NOTES: the claim's answer."""
    claimed = await pool.post("/api/pool/claim", headers=AUTH, json=SOURCE)
    assert claimed.status_code == 200, claimed.text
    await runtimes.remember(claimed.json()["instanceId"], *NOTES)
    return dict(claimed.json())


async def instances(pool: httpx.AsyncClient) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in (await pool.get("/api/pool/instances", headers=AUTH)).json()}


async def assert_cloned(
    pool: httpx.AsyncClient, runtimes: Runtimes, source: dict[str, Any]
) -> dict[str, Any]:
    """Clone `source`, and check the clone answers with its state in a conversation of its own."""
    started = time.monotonic()
    response = await pool.post(f"/api/pool/instances/{source['instanceId']}/clone", headers=AUTH)
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    clone = dict(response.json())
    print(f"\nclone took {elapsed * 1000:.0f} ms ({clone['stateBytes']} bytes of state)")
    assert clone["parentInstance"] == source["instanceId"]
    assert clone["instanceId"] != source["instanceId"]
    assert clone["conversationId"] != source["conversationId"]
    assert (clone["agentName"], clone["templateId"]) == ("Ada", "default")

    # The clone's own runtime answers with the source's memory, in its new conversation.
    assert await runtimes.notes(clone["instanceId"]) == NOTES
    assert (await runtimes.status(clone["instanceId"]))["conversationId"] == clone["conversationId"]
    # The source is as it was.
    assert await runtimes.notes(source["instanceId"]) == NOTES
    assert (await runtimes.status(source["instanceId"]))["conversationId"] == source["conversationId"]

    # Lineage and the agent's settings, as the operator API shows them.
    rows = await instances(pool)
    assert rows[source["instanceId"]]["status"] == "claimed"
    assert rows[source["instanceId"]]["parentInstance"] is None
    target = rows[clone["instanceId"]]
    assert (target["status"], target["parentInstance"], target["ownerId"]) == (
        "claimed",
        source["instanceId"],
        "owner-7",
    )
    agents = {a["id"]: a for a in (await pool.get("/api/pool/agents", headers=AUTH)).json()}
    agent = agents[clone["instanceId"]]
    assert (agent["instructions"], agent["metadata"], agent["parentInstance"]) == (
        SOURCE["instructions"],
        SOURCE["metadata"],
        source["instanceId"],
    )
    assert agent["conversationId"] == clone["conversationId"]
    return clone
