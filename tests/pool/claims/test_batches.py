"""Concurrent claims' writes as batches, on a real PostgreSQL (`ClaimsDb`, `statements.RESERVE_MANY`,
`MARK_CLAIMED_MANY`): a burst goes in few statements, and every rule of the one-claim statements
holds inside a batch: distinct instances, template and version order, no barging, dedup by key and
joinUrl, and an outcome recorded only on a claim still pending."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.claims import batches
from pool.claims.db import ALONE_IN_FLIGHT, ClaimsDb, DatabaseSlow
from pool.claims.records import Claimed, NewClaim, Picked
from pool.claims.schemas import ClaimCreate
from pool.models import Claim, Instance
from shared.db import libpq_url
from tests.pool.factories import make_instance


@pytest.fixture
def batched() -> list[tuple[str, int]]:
    """Each batch the db ran: which write, how many claims (as the pool's metrics are told)."""
    return []


@pytest.fixture
async def db(pool_db_url: str, batched: list[tuple[str, int]]) -> AsyncIterator[ClaimsDb]:
    claims_db = ClaimsDb(pool_db_url, on_batch=lambda write, claims: batched.append((write, claims)))
    try:
        yield claims_db
    finally:
        await claims_db.close()


async def idle(sessionmaker: async_sessionmaker[AsyncSession], count: int, **row: Any) -> list[str]:
    async with sessionmaker() as session, session.begin():
        return [(await make_instance(session, token="t", **row)).id for _ in range(count)]


def new(**fields: str | None) -> NewClaim:
    values: dict[str, str | None] = {"caller": "api", "key": None, "digest": "h", "join_url": None}
    values.update(fields)
    return NewClaim(claim_id=uuid.uuid4().hex, **values)  # type: ignore[arg-type]


async def burst(db: ClaimsDb, claims: list[NewClaim]) -> list[Picked | None]:
    return await asyncio.gather(*(db.reserve(claim) for claim in claims))


async def rows(sessionmaker: async_sessionmaker[AsyncSession]) -> tuple[list[Instance], list[Claim]]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(Instance))).all()), list(
            (await session.scalars(select(Claim))).all()
        )


async def test_a_burst_of_claims_goes_in_batches_and_each_gets_an_instance_of_its_own(
    db: ClaimsDb, sessionmaker: async_sessionmaker[AsyncSession], batched: list[tuple[str, int]]
) -> None:
    ids = await idle(sessionmaker, 40)
    claims = [new() for _ in range(30)]
    picked = await burst(db, claims)
    assert all(p is not None for p in picked)
    assert len({p.id for p in picked if p is not None}) == 30
    assert [w for w, _ in batched] and {w for w, _ in batched} == {"reserve"}  # not one statement each
    instances, stored = await rows(sessionmaker)
    # The oldest 30 were taken; each claim row is attached to the instance it was answered with.
    assert {i.id for i in instances if i.status == "claiming"} == set(ids[:30])
    attached = {c.id: c.instance_id for c in stored}
    assert all(attached[c.claim_id] == p.id for c, p in zip(claims, picked, strict=True) if p is not None)

    outcomes = [
        Claimed(
            c.claim_id, p.id, "claimed", ClaimCreate(agentName=f"agent {n}"), f"conv {n}", "inv", {"n": n}
        )
        for n, (c, p) in enumerate(zip(claims, picked, strict=True))
        if p is not None
    ]
    recorded = await asyncio.gather(*(db.mark_claimed(o) for o in outcomes))
    assert recorded == [True] * 30
    assert "claimed" in {w for w, _ in batched}
    instances, stored = await rows(sessionmaker)
    by_id = {i.id: i for i in instances}
    for outcome in outcomes:
        assert by_id[outcome.instance_id].status == "claimed"
        assert by_id[outcome.instance_id].agent_name == outcome.body.agent_name
        assert by_id[outcome.instance_id].conversation_id == outcome.conversation_id
    assert {c.status for c in stored} == {"succeeded"}
    assert sorted(c.response["n"] for c in stored if c.response) == list(range(30))


async def test_a_batch_larger_than_the_idle_instances_takes_them_all_and_leaves_no_claim_behind(
    db: ClaimsDb, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await idle(sessionmaker, 4)
    picked = await burst(db, [new() for _ in range(10)])
    assert sum(p is not None for p in picked) == 4
    instances, stored = await rows(sessionmaker)
    assert Counter(i.status for i in instances) == {"claiming": 4}
    assert len(stored) == 4 and all(c.instance_id is not None for c in stored)


async def test_in_a_batch_each_template_gets_its_own_newest_version_first(
    db: ClaimsDb, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    old = await idle(sessionmaker, 3, template_id="a", template_version=1)
    new_a = await idle(sessionmaker, 2, template_id="a", template_version=2)
    b = await idle(sessionmaker, 3, template_id="b")
    claims = [new(template=t) for t in ("a", "b", "a", "b", "a", "a", "b")]
    picked = await burst(db, claims)
    got = {c.template: set() for c in claims}  # type: dict[str, set[str]]
    for claim, instance in zip(claims, picked, strict=True):
        assert instance is not None
        got[claim.template].add(instance.id)
    assert new_a[0] in got["a"] and new_a[1] in got["a"] and len(got["a"] & set(old)) == 2
    assert got["b"] == set(b)


async def test_no_barging_inside_a_batch_a_template_with_queued_claims_takes_nothing(
    db: ClaimsDb, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await idle(sessionmaker, 3, template_id="a")
    await idle(sessionmaker, 3, template_id="b")
    async with sessionmaker() as session, session.begin():
        session.add(Claim(id="queued1", caller="api", status="queued", template="a", request_hash="h"))
    claims = [new(template=t) for t in ("a", "b", "a", "b", "a")]
    picked = await burst(db, claims)
    assert [p is not None for p in picked] == [c.template == "b" for c in claims]


async def test_duplicates_inside_one_batch_only_the_first_of_a_key_or_joinurl_is_reserved(
    db: ClaimsDb, sessionmaker: async_sessionmaker[AsyncSession], batched: list[tuple[str, int]]
) -> None:
    await idle(sessionmaker, 12)
    claims = [
        *(new() for _ in range(ALONE_IN_FLIGHT)),  # these run alone; the rest wait and go together
        new(key="k1"),
        new(key="k1"),
        new(join_url="https://meet/j1"),
        new(join_url="https://meet/j1"),
        new(key="k1", caller="other"),  # another caller's key is another claim
        new(),
    ]
    picked = await burst(db, claims)
    assert batched == [("reserve", 6)]
    assert [p is not None for p in picked[ALONE_IN_FLIGHT:]] == [True, False, True, False, True, True]
    instances, stored = await rows(sessionmaker)
    assert Counter(i.status for i in instances) == {
        "claiming": 4 + ALONE_IN_FLIGHT,
        "idle": 8 - ALONE_IN_FLIGHT,
    }
    assert {c.id for c in stored} == {c.claim_id for c, p in zip(claims, picked, strict=True) if p}


async def test_an_outcome_is_recorded_only_on_claims_still_pending_in_the_batch(
    db: ClaimsDb, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await idle(sessionmaker, 5)
    claims = [new() for _ in range(5)]
    picked = await burst(db, claims)
    ended = claims[3].claim_id
    async with sessionmaker() as session, session.begin():  # a kill ended this one meanwhile
        await session.execute(update(Claim).where(Claim.id == ended).values(status="failed"))
    outcomes = [
        Claimed(c.claim_id, p.id, "claimed", ClaimCreate(agentName="a"), "conv", "inv", {})
        for c, p in zip(claims, picked, strict=True)
        if p is not None
    ]
    recorded = await asyncio.gather(*(db.mark_claimed(o) for o in outcomes))
    assert recorded == [c.claim_id != ended for c in claims]
    instances, _ = await rows(sessionmaker)
    assert Counter(i.status for i in instances) == {"claimed": 4, "claiming": 1}


async def test_a_batch_the_database_refuses_is_retried_claim_by_claim(
    db: ClaimsDb,
    sessionmaker: async_sessionmaker[AsyncSession],
    monkeypatch: pytest.MonkeyPatch,
    batched: list[tuple[str, int]],
) -> None:
    async def refused(pool: asyncpg.Pool, claims: list[NewClaim], *, timeout: float) -> list[asyncpg.Record]:
        raise asyncpg.exceptions.DeadlockDetectedError("deadlock detected")

    monkeypatch.setattr(batches, "reserve", refused)
    await idle(sessionmaker, 8)
    picked = await burst(db, [new() for _ in range(8)])
    assert batched  # a batch was tried, refused, and its claims went one by one
    assert len({p.id for p in picked if p is not None}) == 8


async def test_a_write_that_waits_past_its_bound_answers_503_and_leaves_nothing_behind(
    pool_db_url: str, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    """A claim whose key another transaction is still inserting waits for it; past the statement
    bound the claim, and every claim batched with it, is refused (503) instead of hanging, and the
    cancelled statement kept nothing."""
    await idle(sessionmaker, 8)
    slow = ClaimsDb(pool_db_url, statement_timeout=0.5)
    holder = await asyncpg.connect(libpq_url(pool_db_url))
    try:
        blocking = holder.transaction()
        await blocking.start()
        await holder.execute(
            "INSERT INTO claims (id, caller, idempotency_key, request_hash, status, template)"
            " VALUES ('holder', 'api', 'k1', 'h', 'pending', 'default')"
        )
        claims = [*(new() for _ in range(ALONE_IN_FLIGHT)), new(key="k1"), new(), new()]
        answers = await asyncio.gather(*(slow.reserve(c) for c in claims), return_exceptions=True)
        await blocking.rollback()
    finally:
        await holder.close()
        await slow.close()
    assert all(isinstance(a, Picked) for a in answers[:ALONE_IN_FLIGHT])
    # The blocked claim and the two that travelled with it in its batch.
    assert all(isinstance(a, DatabaseSlow) for a in answers[ALONE_IN_FLIGHT:]), answers
    assert DatabaseSlow().status_code == 503
    instances, stored = await rows(sessionmaker)
    assert Counter(i.status for i in instances) == {"claiming": ALONE_IN_FLIGHT, "idle": 8 - ALONE_IN_FLIGHT}
    assert len(stored) == ALONE_IN_FLIGHT
