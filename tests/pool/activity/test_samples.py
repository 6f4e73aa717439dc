"""The minute samples on a real PostgreSQL: the tick leader writes one row per template per minute
(a second tick in the minute writes nothing), with the refill times of the instances that became
idle in the minute before; two replicas' claim counts and latency histograms add up in one row;
both tables are pruned past their retention; and the histogram reads quantiles back."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.activity import latency, samples
from pool.activity.recorder import Recorder
from pool.config import Settings
from pool.models import ClaimSample, InstanceEvent, TemplateSample
from tests.pool.factories import make_instance


async def test_one_row_per_template_per_minute_with_the_refill_times(
    sessionmaker: async_sessionmaker[AsyncSession], make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(min_idle=3)
    async with sessionmaker() as session, session.begin():
        for n, (status, ready) in enumerate(
            [
                ("idle", 20.0),
                ("idle", 40.0),
                ("claimed", None),
                ("starting", None),
                ("idle", None),
            ]
        ):
            await make_instance(session, id=f"instance{n:04d}", status=status)
            if ready is not None:  # created `ready` before it became idle, just now
                await session.execute(
                    text(
                        "UPDATE instances SET created_at = now() - make_interval(secs => :ready),"
                        " ready_at = now() WHERE id = :id"
                    ),
                    {"id": f"instance{n:04d}", "ready": ready},
                )
    assert await samples.record_minute(sessionmaker, settings) == 1
    assert await samples.record_minute(sessionmaker, settings) == 0  # the same minute: nothing more
    async with sessionmaker() as session:
        (row,) = (await session.scalars(select(TemplateSample))).all()
    assert (row.template_id, row.idle, row.starting, row.claimed, row.queued, row.target) == (
        "default",
        3,
        1,
        1,
        0,
        3,
    )
    assert row.refill_p50_seconds == pytest.approx(30.0, abs=1) and row.refill_max_seconds == pytest.approx(
        40.0, abs=1
    )
    assert row.target_reason is None  # the status API gives none yet

    # Past the retention, the next minute's pass deletes it (and old claim minutes).
    async with sessionmaker() as session, session.begin():
        await session.execute(update(TemplateSample).values(minute=text("minute - interval '49 hours'")))
        session.add(
            ClaimSample(minute=text("now() - interval '49 hours'"), latency_buckets=[0] * latency.SIZE)
        )
    assert await samples.record_minute(sessionmaker, settings) == 1
    async with sessionmaker() as session:
        assert len((await session.scalars(select(TemplateSample))).all()) == 1
        assert (await session.scalars(select(ClaimSample))).all() == []


async def test_two_replicas_claims_add_up_in_one_minute(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    first, second = Recorder(sessionmaker), Recorder(sessionmaker)
    for outcome, seconds in [("claimed", 0.05), ("claimed", 0.07), ("queued", 3.0), ("empty", 0.002)]:
        first.claim(outcome, seconds)
    second.claim("claimed", 0.06)
    second.claim("queued", None)  # an async claim that queued: a miss, its wait unknown yet
    second.claim("failed", 1.0)
    second.event("instance0001", "claim.claimed", actor="claim", claimId="c" * 32, error="x" * 1000)
    await first.flush()
    await second.flush()
    async with sessionmaker() as session:
        rows = (await session.scalars(select(ClaimSample))).all()
        (event,) = (await session.scalars(select(InstanceEvent))).all()
    # One minute (two if the test straddled one): counts and histograms added, not replaced.
    assert (
        sum(r.hits for r in rows) == 3
        and sum(r.misses for r in rows) == 3
        and sum(r.other for r in rows) == 1
    )
    merged = latency.merge([r.latency_buckets for r in rows])
    assert sum(merged) == 4  # the claims that got an agent: hits, and the sync claim that waited
    assert 0.04 <= (latency.quantile(merged, 0.5) or 0) <= 0.1
    assert (latency.quantile(merged, 0.99) or 0) >= 2.0
    assert len(event.summary["error"]) == 300  # cut: an error may carry a platform's whole answer


def test_quantiles_read_back_within_a_bucket() -> None:
    counts = [0] * latency.SIZE
    for seconds in [0.01] * 50 + [0.2] * 49 + [9.0]:
        counts[latency.bucket(seconds)] += 1
    assert latency.quantile(counts, 0.5) == pytest.approx(0.01, rel=0.5)
    assert latency.quantile(counts, 0.9) == pytest.approx(0.2, rel=0.5)
    assert latency.quantile(counts, 1.0) == pytest.approx(9.0, rel=0.5)
    assert latency.quantile([0] * latency.SIZE, 0.5) is None
    assert latency.bucket(10_000) == latency.SIZE - 1
