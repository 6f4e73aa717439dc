"""The tick's sizing step (DESIGN.md §12): each live template's idle target, from its pool policy
and what the pool measured, by the pure rules of `pool.sizing`.

Each tick (the leader's), before the plan, for every live template:
- its demand is brought up to date with the claims made since the last tick (all of them: one the
  pool could not serve at once is demand too), and its idle instance-hours with the idle instances
  it had over the interval (hourly buckets, the last 24 h: the budget's "spent");
- its refill time is a high quantile of its recent refills (create requested → idle), else of every
  template's (a new template has none), else the sizing's default;
- `pool.sizing.target.size` gives the target and the reason (demand ignored when the policy's
  sizing is `fixed`, so the target is its floor raised by its schedules, as before sizing existed);
- idle instances past the policy's max idle age, and the oldest idle ones once the supply has stayed
  above the target for `POOL_SCALE_DOWN_COOLDOWN_SECONDS`, are handed to the plan to destroy.
The state is kept in `templates.sizing_state`, which the plan's and the refill's targets read
(`pool.tick.pools`) and the status API shows.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pool.claims import repository as claims_repo
from pool.claims.eta import REFILL_WINDOW_SECONDS
from pool.config import Settings
from pool.models import Template, TemplateVersion
from pool.sizing import retire
from pool.sizing.demand import DemandState, observe, quantile, refill_quantile
from pool.sizing.schedule import parse_all
from pool.sizing.target import Limits, Tuning, size
from pool.tick.context import TickContext
from pool.tick.plan import Row

HOUR = 3600.0
MIN_TEMPLATE_SAMPLES = 3

RECENT_CLAIMS = text("SELECT template, count(*) FROM claims WHERE created_at > :since GROUP BY template")
REFILLS = text(
    """
    SELECT template_id, platform, extract(epoch FROM ready_at - created_at)::float8 FROM instances
     WHERE ready_at > now() - make_interval(secs => :window)
    """
)


def _demand(state: dict[str, Any]) -> DemandState:
    at = state.get("at")
    return DemandState(
        rate=float(state.get("rate", 0.0)),
        peak=float(state.get("peak", 0.0)),
        at=datetime.fromisoformat(at) if at else None,
    )


def _spent(buckets: dict[str, float], idle: int, since: datetime | None, now: datetime) -> dict[str, float]:
    """The idle instance-hours per hour bucket of the last 24 h, this interval's added."""
    if since is not None and now > since:
        hour = str(int(now.timestamp() // HOUR))
        buckets = {**buckets, hour: buckets.get(hour, 0.0) + idle * (now - since).total_seconds() / HOUR}
    oldest = int(now.timestamp() // HOUR) - 24
    return {hour: hours for hour, hours in buckets.items() if int(hour) > oldest}


@dataclass(frozen=True)
class Measured:
    """What the pool measured since the last tick, for every template at once."""

    claims: dict[str, int]
    refills: dict[str, list[tuple[str | None, float]]]
    every_refill: list[tuple[str | None, float]]
    queued: dict[str, int]

    def refills_of(self, template_id: str) -> list[tuple[str | None, float]]:
        mine = self.refills.get(template_id, [])
        return mine if len(mine) >= MIN_TEMPLATE_SAMPLES else self.every_refill


async def _measure(session: AsyncSession, since: datetime) -> Measured:
    claims = {str(t): int(n) for t, n in (await session.execute(RECENT_CLAIMS, {"since": since})).all()}
    refills: dict[str, list[tuple[str | None, float]]] = defaultdict(list)
    every: list[tuple[str | None, float]] = []
    for template_id, platform, seconds in await session.execute(REFILLS, {"window": REFILL_WINDOW_SECONDS}):
        refills[str(template_id)].append((platform, float(seconds)))
        every.append((platform, float(seconds)))
    return Measured(claims, refills, every, await claims_repo.queue_depths(session))


async def resize(ctx: TickContext, rows: list[Row], now: datetime) -> dict[str, tuple[tuple[str, str], ...]]:
    """Size every live template now and keep its state; returns the idle instances to retire, as
    (instance id, why) per template."""
    by_template: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_template[row.template_id].append(row)
    retired: dict[str, tuple[tuple[str, str], ...]] = {}
    async with ctx.sessionmaker.begin() as session:
        templates = (
            await session.execute(
                select(Template.id, Template.sizing_state, TemplateVersion)
                .join(
                    TemplateVersion,
                    (TemplateVersion.template_id == Template.id)
                    & (TemplateVersion.version == Template.current_version),
                )
                .where(Template.archived_at.is_(None))
            )
        ).all()
        known = [at for _, state, _ in templates if (at := _demand(state or {}).at) is not None]
        measured = await _measure(session, min(known, default=now))
        for template_id, state, version in templates:
            new_state, retired[template_id] = _size_one(
                ctx.settings, version, dict(state or {}), by_template.get(template_id, []), measured, now
            )
            await session.execute(
                update(Template).where(Template.id == template_id).values(sizing_state=new_state)
            )
    return retired


def _size_one(
    settings: Settings,
    version: TemplateVersion,
    state: dict[str, Any],
    rows: list[Row],
    measured: Measured,
    now: datetime,
) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    template_id = version.template_id
    demand = _demand(state)
    # A template's first tick only starts its clock: the claims before it are not its interval's.
    observed = observe(
        demand,
        measured.claims.get(template_id, 0) if demand.at is not None else 0,
        now,
        peak_half_life_seconds=settings.sizing_peak_half_life_seconds,
    )
    spent = _spent(dict(state.get("idleHours", {})), sum(r.status == "idle" for r in rows), demand.at, now)
    refills = measured.refills_of(template_id)
    refill = refill_quantile(refills)
    floor = settings.min_idle if version.min_idle is None else version.min_idle
    if version.max_idle is not None:
        floor = min(floor, version.max_idle)
    limits = Limits(
        min_idle=floor,
        max_idle=version.max_idle,
        schedules=parse_all(version.schedules or []),
        idle_hours_per_day=version.idle_hours_per_day,
    )
    demand_driven = (version.sizing or settings.sizing) == "demand"
    sized = size(
        observed if demand_driven else DemandState(at=now),
        refill,
        limits,
        now,
        spent_idle_hours=sum(spent.values()),
        tuning=Tuning(hit_target=settings.sizing_hit_target, margin=settings.sizing_margin),
    )
    above_since = state.get("aboveSince")
    drained = retire.drain(
        rows,
        sized.target,
        now,
        above_since=datetime.fromisoformat(above_since) if above_since else None,
        queued=measured.queued.get(template_id, 0),
        cooldown_seconds=settings.scale_down_cooldown_seconds,
    )
    recycled = (
        retire.recycle(rows, now, max_idle_age_seconds=version.max_idle_age_seconds)
        if version.max_idle_age_seconds is not None
        else []
    )
    new_state = {
        "rate": observed.rate,
        "peak": observed.peak,
        "at": now.isoformat(),
        "idleHours": spent,
        "aboveSince": drained.above_since.isoformat() if drained.above_since else None,
        "target": sized.target,
        "reason": sized.reason if demand_driven else _fixed_reason(floor, sized.reasons),
        "limitedBy": sized.limited_by,
        "sizing": "demand" if demand_driven else "fixed",
        "claimsPerMinute": round(observed.per_minute, 3),
        "refill": _refill_view(refills, refill),
        "idleHoursSpent": round(sum(spent.values()), 3),
    }
    return new_state, tuple((d.instance_id, d.reason) for d in [*recycled, *drained.destroys])


def _fixed_reason(floor: int, reasons: tuple[str, ...]) -> str:
    """A fixed target's reason: its floor, then what changed it (a schedule, the budget, the cap);
    the demand line is left out because it was not weighed."""
    changes = [r for r in reasons[1:] if not r.startswith("raised to min_idle")]
    return "; ".join([f"fixed at {floor}", *changes])


def _refill_view(samples: list[tuple[str | None, float]], high: float | None) -> dict[str, Any]:
    seconds = [s for _, s in samples]
    by_platform: dict[str, list[float]] = defaultdict(list)
    for platform, s in samples:
        by_platform[platform or "unplaced"].append(s)
    return {
        "samples": len(seconds),
        "p50Seconds": quantile(seconds, 0.5),
        "p90Seconds": high,
        "byPlatform": {
            p: {"samples": len(v), "p50Seconds": quantile(v, 0.5)} for p, v in sorted(by_platform.items())
        },
    }
