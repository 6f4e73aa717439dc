"""The tick's upkeep of claims (pool.claims.recovery.upkeep) and the caller scope of keys:
- a `claiming` instance no pending claim holds is reset and given back (or condemned);
- ended claim records older than POOL_CLAIM_RETENTION_HOURS are pruned in bounded batches,
  except a succeeded one whose agent still holds its joinUrl;
- an Idempotency-Key means something only to the caller that sent it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.auth import API_KEY_CALLER
from pool.claims import recovery
from pool.claims import service as claims_service
from pool.claims.schemas import ClaimCreate
from pool.config import Settings
from pool.deps import PoolState
from pool.instance_client import InstanceClient
from pool.main import create_app
from pool.models import Claim, Instance
from shared.auth import SecretBox
from shared.errors import Conflict, error_body
from tests.fakes.fleet import FakeFleet
from tests.pool.factories import ENCRYPTION_KEY, add_fleet_instances

OLD = datetime.now(UTC) - timedelta(days=4)


async def statuses(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessionmaker() as session:
        return {i.id: i.status for i in (await session.scalars(select(Instance))).all()}


async def claim_ids(sessionmaker: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessionmaker() as session:
        return sorted((await session.scalars(select(Claim.id))).all())


async def upkeep(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> recovery.Upkeep:
    instances = InstanceClient()
    try:
        return await recovery.upkeep(sessionmaker, instances, SecretBox(ENCRYPTION_KEY), settings)
    finally:
        await instances.aclose()


def claim_row(claim_id: str, **values: Any) -> Claim:
    defaults: dict[str, Any] = {"caller": API_KEY_CALLER, "request_hash": "h", "created_at": OLD}
    return Claim(id=claim_id.ljust(32, "0"), **{**defaults, **values})


async def test_a_claiming_instance_with_no_pending_claim_is_reset_and_given_back(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [orphan, owned] = await add_fleet_instances(sessionmaker, fleet, 2, status="claiming")
    fleet.agents[orphan].conversation_id = "conv_left_behind"
    async with sessionmaker() as session, session.begin():
        session.add(claim_row("live", instance_id=owned, status="pending", created_at=datetime.now(UTC)))

    done = await upkeep(sessionmaker, make_settings())

    assert done.recovered == {orphan: "idle"}
    assert await statuses(sessionmaker) == {orphan: "idle", owned: "claiming"}
    assert (fleet.agents[orphan].resets, fleet.agents[orphan].conversation_id) == (1, None)
    assert fleet.agents[owned].resets == 0


async def test_ended_claims_past_the_retention_are_pruned_but_a_held_join_url_is_kept(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    [serving, gone] = await add_fleet_instances(sessionmaker, fleet, 2, status="claimed")
    async with sessionmaker() as session, session.begin():
        (await session.get(Instance, gone)).status = "dead"  # type: ignore[union-attr]
        session.add_all(
            [
                claim_row("failed", status="failed", response=error_body("UpstreamError", "x")),
                claim_row("nojoin", status="succeeded", response={}),
                claim_row("held", status="succeeded", join_url="https://j/1", instance_id=serving),
                claim_row("deadjoin", status="succeeded", join_url="https://j/2", instance_id=gone),
                claim_row("released", status="succeeded", join_url="https://j/3", join_released_at=OLD),
                claim_row("recent", status="failed", created_at=datetime.now(UTC)),
            ]
        )

    done = await upkeep(sessionmaker, make_settings(claim_retention_hours=24))

    assert done.pruned == 4
    assert await claim_ids(sessionmaker) == ["held".ljust(32, "0"), "recent".ljust(32, "0")]


async def test_pruning_deletes_in_bounded_batches_per_tick(
    make_settings: Callable[..., Settings],
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(recovery, "PRUNE_BATCH", 2)
    monkeypatch.setattr(recovery, "PRUNE_BATCHES_PER_TICK", 2)
    async with sessionmaker() as session, session.begin():
        session.add_all([claim_row(f"old{n}", status="failed") for n in range(5)])
    settings = make_settings(claim_retention_hours=1)

    assert (await upkeep(sessionmaker, settings)).pruned == 4
    assert (await upkeep(sessionmaker, settings)).pruned == 1
    assert await claim_ids(sessionmaker) == []


@contextlib.asynccontextmanager
async def pool_state(settings: Settings) -> AsyncIterator[PoolState]:
    app = create_app(settings)
    async with app.router.lifespan_context(app) as state:
        assert state is not None
        yield state["pool"]


async def test_idempotency_keys_are_scoped_per_caller(
    make_settings: Callable[..., Settings], fleet: FakeFleet, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await add_fleet_instances(sessionmaker, fleet, 4)
    body = ClaimCreate(agent_name="Ada", instructions="hi")
    async with pool_state(make_settings()) as pool:

        async def claim(caller: str, key: str, request: ClaimCreate = body) -> str:
            answer = await claims_service.claim(
                pool, request, caller=caller, idempotency_key=key, wait_seconds=0
            )
            return answer.instance_id

        mine = await claim("site-a", "same-key")
        theirs = await claim("site-b", "same-key")
        assert mine != theirs
        assert await claim("site-a", "same-key") == mine
        assert await claim("site-b", "same-key") == theirs
        # A joinUrl is one conversation whoever asks: another caller's agent there is a conflict.
        joining = ClaimCreate(agent_name="Ada", instructions="hi", join_url="https://convos.example/join/s")
        joined = await claim("site-a", "join-1", joining)
        with pytest.raises(Conflict, match="another caller's agent already holds this joinUrl"):
            await claim("site-b", "join-2", joining)
        # Once that agent is gone, the conversation may be joined again, by anyone.
        async with sessionmaker() as session, session.begin():
            (await session.get(Instance, joined)).status = "dead"  # type: ignore[union-attr]
        assert await claim("site-b", "join-2", joining) not in (mine, theirs, joined)
    async with sessionmaker() as session:
        rows = (await session.scalars(select(Claim))).all()
    assert sorted((c.caller, c.idempotency_key) for c in rows) == [
        ("site-a", "join-1"),
        ("site-a", "same-key"),
        ("site-b", "join-2"),
        ("site-b", "same-key"),
    ]
