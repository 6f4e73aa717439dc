"""The production clients of the system we replace, replayed exactly as they call (issue 12).

Its landing site's join flow sends `POST /api/pool/claim {"joinUrl", "source": "landing"}` (no
agent name, no instructions), retries once after 2 s on a 5xx, shows the JSON `error` field to the
user as the message, reads `joined`, and polls `GET /api/pool/counts` and `GET /api/pool/info`.
"""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.models import Claim, Instance
from tests.fakes.fleet import FakeFleet
from tests.pool.conftest import AUTH
from tests.pool.factories import add_fleet_instances

JOIN = "https://convos.example/join/landing-1"
LANDING_CLAIM = {"joinUrl": JOIN, "source": "landing"}


def readable(sentence: object) -> bool:
    """What a person can be shown: words with spaces, a capital first letter, a full stop."""
    return (
        isinstance(sentence, str)
        and " " in sentence
        and sentence[0].isupper()
        and sentence.endswith((".", "?", "!"))
    )


async def test_the_landing_join_is_claimed_with_the_original_defaults(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [instance_id] = await add_fleet_instances(sessionmaker, fleet, 1)

    response = await client.post(
        "/api/pool/claim",
        # A newer landing build sending a field this pool does not know must not break the join.
        json={**LANDING_CLAIM, "experiment": "b"},
        headers=AUTH,
    )

    assert response.status_code == 200, response.text
    assert response.json()["joined"] is True
    assert response.json()["agentName"] == "Assistant"
    async with sessionmaker() as session:
        row = await session.get_one(Instance, instance_id)
        [claim] = (await session.scalars(select(Claim))).all()
    assert (row.agent_name, row.instructions, row.join_url) == (
        "Assistant",
        "You are a helpful AI assistant.",
        JOIN,
    )
    assert (claim.source, claim.instance_id) == ("landing", instance_id)


async def test_a_queued_landing_claim_records_its_source(
    client: httpx.AsyncClient, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    answer = await client.post("/api/pool/claims", json={**LANDING_CLAIM, "timeoutSeconds": 60}, headers=AUTH)

    assert answer.status_code == 202, answer.text
    async with sessionmaker() as session:
        [claim] = (await session.scalars(select(Claim))).all()
    assert (claim.status, claim.source) == ("queued", "landing")


async def test_an_empty_pool_tells_the_user_a_sentence(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/pool/claim", json=LANDING_CLAIM, headers=AUTH)

    assert response.status_code == 503
    body = response.json()
    assert readable(body["error"]), body
    assert body["kind"] == "Unavailable"


async def test_a_bad_join_url_tells_the_user_a_sentence(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/pool/claim", json={"joinUrl": "not a url"}, headers=AUTH)

    assert response.status_code == 422
    body = response.json()
    assert readable(body["error"]), body
    assert "joinUrl" in body["error"]
    assert body["kind"] == "ValidationError"
    # The machine-readable list FastAPI clients read stays where it was.
    assert body["detail"][0]["loc"] == ["body", "joinUrl"]


async def test_a_body_that_is_not_json_tells_the_user_a_sentence(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/pool/claim", content=b"{not json", headers={**AUTH, "Content-Type": "application/json"}
    )

    assert response.status_code == 422
    assert response.json()["error"] == "The request body is not valid JSON."


async def test_the_retry_after_a_5xx_gets_the_same_agent(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # The landing retries once after a 5xx with the same body: the joinUrl makes it the same claim.
    await add_fleet_instances(sessionmaker, fleet, 2)

    first = await client.post("/api/pool/claim", json=LANDING_CLAIM, headers=AUTH)
    retry = await client.post("/api/pool/claim", json=LANDING_CLAIM, headers=AUTH)

    assert (first.status_code, retry.status_code) == (200, 200)
    assert retry.json() == first.json()
    assert sum(agent.provisions for agent in fleet.agents.values()) == 1


async def test_counts_and_info_answer_what_the_landing_polls(
    client: httpx.AsyncClient, fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 2)

    counts = await client.get("/api/pool/counts", headers=AUTH)
    info = await client.get("/api/pool/info")

    assert counts.status_code == 200
    # The keys the original's counts always carried, with the rest of ours beside them.
    assert {"starting", "idle", "claimed", "crashed"} <= counts.json().keys()
    assert counts.json()["idle"] == 2
    assert info.status_code == 200
    assert info.json().keys() == {"environment", "version"}
    assert info.json()["environment"] in ("development", "test", "production")
