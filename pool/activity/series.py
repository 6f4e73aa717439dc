"""The last day of samples, shaped for the dashboard's pictures: per template its instances by
status, target, queue and refill time a minute at a time; the claims' warm-hit rate and latency
p50/p99 in buckets of a few minutes (a minute of two claims makes a noisy rate)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pool.activity import latency
from pool.models import ClaimSample, Template, TemplateSample

Point = tuple[datetime, float | None]


@dataclass
class TemplateSeries:
    template_id: str
    slug: str
    idle: list[Point] = field(default_factory=list)
    starting: list[Point] = field(default_factory=list)
    claimed: list[Point] = field(default_factory=list)
    target: list[Point] = field(default_factory=list)
    queued: list[Point] = field(default_factory=list)
    refill: list[Point] = field(default_factory=list)
    # The latest target and its reason, and each time the reason changed: (when, reason).
    latest_target: int | None = None
    latest_reason: str | None = None
    reasons: list[tuple[datetime, str]] = field(default_factory=list)


@dataclass
class ClaimSeries:
    hit_rate: list[Point] = field(default_factory=list)
    p50: list[Point] = field(default_factory=list)
    p99: list[Point] = field(default_factory=list)
    hits: int = 0
    misses: int = 0
    other: int = 0
    p50_day: float | None = None
    p99_day: float | None = None


@dataclass
class Pictures:
    start: datetime
    end: datetime
    templates: list[TemplateSeries]
    claims: ClaimSeries


async def last_day(session: AsyncSession, *, hours: float = 24, bucket_minutes: int = 10) -> Pictures:
    end = await session.scalar(select(func.now()))
    assert end is not None
    start = end - timedelta(hours=hours)
    return Pictures(
        start, end, await _templates(session, start), await _claims(session, start, bucket_minutes)
    )


async def _templates(session: AsyncSession, start: datetime) -> list[TemplateSeries]:
    slugs = {str(i): str(s) for i, s in (await session.execute(select(Template.id, Template.slug))).all()}
    rows = await session.scalars(
        select(TemplateSample).where(TemplateSample.minute >= start).order_by(TemplateSample.minute)
    )
    by_template: dict[str, TemplateSeries] = {}
    for row in rows:
        series = by_template.get(row.template_id)
        if series is None:
            series = TemplateSeries(row.template_id, slugs.get(row.template_id, row.template_id))
            by_template[row.template_id] = series
        at = row.minute
        series.idle.append((at, row.idle))
        series.starting.append((at, row.starting))
        series.claimed.append((at, row.claimed))
        series.target.append((at, row.target))
        series.queued.append((at, row.queued))
        if row.refill_p50_seconds is not None:
            series.refill.append((at, row.refill_p50_seconds))
        if row.target_reason and row.target_reason != series.latest_reason:
            series.reasons.append((at, row.target_reason))
        series.latest_target, series.latest_reason = row.target, row.target_reason
    return sorted(by_template.values(), key=lambda s: (s.template_id != "default", s.slug))


async def _claims(session: AsyncSession, start: datetime, bucket_minutes: int) -> ClaimSeries:
    rows = await session.scalars(
        select(ClaimSample).where(ClaimSample.minute >= start).order_by(ClaimSample.minute)
    )
    buckets: dict[datetime, list[ClaimSample]] = defaultdict(list)
    day = ClaimSeries()
    every: list[list[int]] = []
    for row in rows:
        minute = row.minute
        at = minute - timedelta(minutes=minute.minute % bucket_minutes)
        buckets[at].append(row)
        day.hits, day.misses, day.other = day.hits + row.hits, day.misses + row.misses, day.other + row.other
        every.append(list(row.latency_buckets))
    for at, group in buckets.items():
        hits, misses = sum(r.hits for r in group), sum(r.misses for r in group)
        if hits + misses:
            day.hit_rate.append((at, 100.0 * hits / (hits + misses)))
        merged = latency.merge([list(r.latency_buckets) for r in group])
        if (p50 := latency.quantile(merged, 0.5)) is not None:
            day.p50.append((at, p50))
            day.p99.append((at, latency.quantile(merged, 0.99)))
    whole = latency.merge(every)
    day.p50_day, day.p99_day = latency.quantile(whole, 0.5), latency.quantile(whole, 0.99)
    return day
