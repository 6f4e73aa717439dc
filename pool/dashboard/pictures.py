"""The dashboard's pictures (the last day of the pool, per template, and of its claims) and one
instance's event log: read from the pool database, drawn on the server (pool/dashboard/charts.py)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from markupsafe import Markup

from pool.activity import series as activity_series
from pool.activity.series import Pictures
from pool.callbacks import events as instance_events
from pool.dashboard.charts import Line, chart
from pool.dashboard.router import SessionAuth, render, require_session
from pool.models import Instance
from shared.db import SessionDep
from shared.schemas import InstanceId

router = APIRouter(prefix="/dashboard", include_in_schema=False, dependencies=[Depends(require_session)])
BUCKET_MINUTES = 10
EVENTS_SHOWN = 200


@router.get("/pictures")
async def pictures(request: Request, db: SessionDep, session: SessionAuth) -> Response:
    day = await activity_series.last_day(db, bucket_minutes=BUCKET_MINUTES)
    return render(request, "pictures.html", {"csrf_token": session.csrf, **drawn(day)})


def drawn(day: Pictures) -> dict[str, Any]:
    """Each picture as SVG markup, with the figures printed beside them."""

    def draw(
        chart_id: str,
        title: str,
        lines: list[Line],
        *,
        unit: str = "",
        gap: timedelta | None = None,
        top: float | None = None,
    ) -> Markup:
        return chart(
            chart_id,
            title,
            lines,
            start=day.start,
            end=day.end,
            unit=unit,
            gap=gap or timedelta(minutes=3),
            top=top,
        )

    claims = day.claims
    answered = claims.hits + claims.misses
    bucket_gap = timedelta(minutes=3 * BUCKET_MINUTES)
    templates = [
        {
            "id": t.template_id,
            "slug": t.slug,
            "target": t.latest_target,
            "reason": t.latest_reason,
            "reasons": t.reasons[-5:],
            "instances": draw(
                f"chart-instances-{t.template_id}",
                f"{t.slug}: instances by status, and the target",
                [
                    Line("idle", "idle", t.idle),
                    Line("starting", "starting", t.starting),
                    Line("claimed", "claimed", t.claimed),
                    Line("target", "target", t.target, step=True),
                ],
            ),
            "queue": draw(
                f"chart-queue-{t.template_id}",
                f"{t.slug}: queued claims",
                [Line("queued", "queued", t.queued)],
            ),
            "refill": draw(
                f"chart-refill-{t.template_id}",
                f"{t.slug}: refill time (create requested → idle, median per minute)",
                [Line("refill p50", "refill", t.refill)],
                unit="s",
                gap=timedelta(hours=1),
            ),
        }
        for t in day.templates
    ]
    return {
        "templates": templates,
        "hit_rate_day": 100.0 * claims.hits / answered if answered else None,
        "claims": claims,
        "bucket_minutes": BUCKET_MINUTES,
        "hit_rate": draw(
            "chart-hit-rate",
            "warm-hit rate",
            [Line("warm hits", "hits", claims.hit_rate)],
            unit="%",
            gap=bucket_gap,
            top=100,
        ),
        "latency": draw(
            "chart-latency",
            "claim latency p50 and p99",
            [Line("p50", "p50", claims.p50), Line("p99", "p99", claims.p99)],
            unit="s",
            gap=bucket_gap,
        ),
    }


@router.get("/instances/{instance_id}/events")
async def events(request: Request, instance_id: InstanceId, db: SessionDep, session: SessionAuth) -> Response:
    """The instance's event log, newest first; also for an instance already gone (until retention)."""
    rows = await instance_events.list_events(db, instance_id=instance_id, limit=EVENTS_SHOWN)
    instance = await db.get(Instance, instance_id)
    context = {
        "csrf_token": session.csrf,
        "instance_id": instance_id,
        "status": instance.status if instance is not None else None,
        "events": rows,
        "limit": EVENTS_SHOWN,
    }
    return render(request, "events.html", context)
