"""One tick: observe → plan → act → record.

- Observe afresh every tick what can have changed (`pool.tick.selection`: starting, failing,
  marked by an event or the listing, plus a bounded rotation of the steady rest): the pool's
  rows, `POST services /status/batch` about those (one attempt: a retry would repeat the whole
  observation, platform calls included; the next tick is the retry), and `/convos/status` of the
  healthy instances whose state the plan could change (`pool.tick.runtimes`). A row not observed
  is no observation (`pool.tick.observe`). If services does not answer, nothing changes. The
  platform's full listing is the separate safety net (`pool.tick.listing`).
- Plan is pure (`pool.tick.plan`).
- Act: each status change and destroy in its own transaction and its own `try`; the updates
  that keep the status (probe counter, deploy status) and the last-seen stamps go in a few
  set-based statements (`pool.tick.observed_writes`). Every write is conditional on the status
  read, so a claim that moved a row meanwhile wins.
- Record: the `tick_state` row and ONE `tick.summary` log line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pool.activity import samples
from pool.callbacks import events as instance_events
from pool.claims import recovery as claims_recovery
from pool.templates import rollouts
from pool.tick import observe, observed_writes, pools, replenish, selection, sizing, state
from pool.tick.context import TickContext
from pool.tick.instance_writes import apply_update, destroy, destroy_orphan
from pool.tick.plan import (
    Action,
    Create,
    Created,
    CreateFailed,
    Destroy,
    DestroyOrphan,
    Observed,
    Resend,
    Row,
    Update,
    count_statuses,
    plan,
    seen_healthy,
    settled,
)
from shared.logging import get_logger
from shared.schemas import StatusBatchRequest

log = get_logger("pool.tick")


@dataclass
class TickResult:
    counts: dict[str, int]
    actions: Counter[str] = field(default_factory=Counter)
    failed_actions: int = 0
    error: str | None = None

    def summary(self, target: int) -> dict[str, Any]:
        return {**self.counts, "target": target, "actions": dict(self.actions), "error": self.error}


async def reconcile(ctx: TickContext, *, leader_id: str) -> TickResult:
    started = time.monotonic()
    async with ctx.sessionmaker() as session:
        started_at = await state.db_now(session)
    await _release_abandoned_claims(ctx)
    # The instance event log's retention (pool/callbacks/events.py): one DELETE, by the leader.
    await instance_events.prune(
        ctx.sessionmaker, retention_hours=ctx.settings.instance_events_retention_hours
    )
    rows = await observe.read_rows(ctx)
    chosen = await selection.select(ctx, rows)
    batch, error = await observe.observe(ctx, observe.request_for(ctx, chosen))
    if batch is None:
        ctx.observe_soon(chosen.marked)  # still to be observed
    # Services unreachable: not asked again (its retries would only lengthen a failed tick).
    platforms = await observe.platforms(ctx) if batch is not None else None
    observed = await observe.observed_from(ctx, rows, batch, asked=frozenset(chosen.observe))
    async with ctx.sessionmaker() as session:
        now = await state.db_now(session)  # rows' ages on the clock that stamped them
    retired = await _resize(ctx, rows, now) if batch is not None else {}
    async with ctx.sessionmaker.begin() as session:
        may_create = await state.may_create(session, ctx.fleet)
        live = await pools.live_pools(session, ctx.settings)
    live = tuple(replace(p, retire=retired.get(p.template_id, ())) for p in live)
    actions = plan(observed, ctx.target(live, may_create=may_create), now)
    result = TickResult(counts=count_statuses(rows), error=error)
    await _act_all(ctx, observed, actions, result)
    if batch is not None:
        try:
            await rollouts.advance_all(ctx, rows, actions, now)
        except Exception as exc:  # noqa: BLE001 - the next tick advances them
            log.warning("tick.rollouts_failed", error=f"{type(exc).__name__}: {exc}"[:300])
    # Promotions and recoveries may have made instances idle: the queue's head gets them first.
    ctx.on_idle()
    seconds = time.monotonic() - started
    summary = result.summary(ctx.settings.min_idle)
    summary["observed"] = len(chosen.observe)
    summary["rotated"] = chosen.rotated
    if batch is not None:
        # The listing's count, unless this tick listed the whole fleet itself (rotation off).
        summary["orphans_on_platform"] = len(batch.orphans) if observe.whole(ctx) else ctx.listing.orphans
    log.info(
        "tick.summary",
        **result.counts,
        target=ctx.settings.min_idle,
        actions=",".join(f"{k}:{v}" for k, v in sorted(result.actions.items())) or "none",
        failed_actions=result.failed_actions,
        error=error or "",
        ms=round(seconds * 1000),
    )
    async with ctx.sessionmaker.begin() as session:
        await state.record_tick(
            session,
            ctx.fleet,
            leader_id=leader_id,
            started_at=started_at,
            duration_ms=round(seconds * 1000),
            summary=summary,
            error=error,
            platforms=platforms,
        )
    await _sample(ctx)
    if ctx.metrics is not None:
        ctx.metrics.observe_tick(seconds)
    return result


async def _resize(ctx: TickContext, rows: list[Row], now: datetime) -> dict[str, tuple[tuple[str, str], ...]]:
    """Each template's target for this tick and the idle instances it retires (pool.tick.sizing); a
    failure keeps the last targets and retires nothing."""
    try:
        return await sizing.resize(ctx, rows, now)
    except Exception as exc:  # noqa: BLE001 - sizing is advisory: the plan uses the last targets
        log.warning("tick.sizing_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return {}


async def _sample(ctx: TickContext) -> None:
    """The dashboard's minute samples (pool/activity/samples.py): informative, never fails a tick."""
    try:
        await samples.record_minute(ctx.sessionmaker, ctx.settings)
    except Exception as exc:  # noqa: BLE001 - the next minute samples again
        log.warning("tick.sample_failed", error=f"{type(exc).__name__}: {exc}"[:300])


async def _release_abandoned_claims(ctx: TickContext) -> None:
    """`claiming` is never planned on, so a claim whose pool died mid-provision would hold its
    instance forever: the claims' upkeep ends such claims, recovers every `claiming` instance no
    pending claim holds (reset → idle, else dead) and prunes old claim records."""
    await claims_recovery.upkeep(ctx.sessionmaker, ctx.instances, ctx.box, ctx.settings)


async def _act_all(
    ctx: TickContext, observed: Observed, actions: Sequence[Action], result: TickResult
) -> None:
    same = [a for a in actions if isinstance(a, Update) and a.status == a.read]
    if same:
        try:
            result.actions["probe"] += len(await observed_writes.write_counters(ctx, same))
        except Exception as exc:  # noqa: BLE001 - the next tick writes them again
            result.failed_actions += len(same)
            log.warning("tick.action_failed", action="Update", error=f"{type(exc).__name__}: {exc}"[:300])
    for action in actions:
        if not (isinstance(action, Update) and action.status == action.read):
            await _act(ctx, action, result)
    acted = {a.instance_id for a in actions if isinstance(a, Update | Destroy | Created | CreateFailed)}
    batch = observed.batch
    if batch is None:
        return
    await observed_writes.record_platforms(ctx, batch)
    # Every row observed and left alone is stamped (the rotation's order, `pool.tick.selection`),
    # its last-healthy too when healthy; a row not probed before services' deadline is not.
    healthy = {row.id for row in seen_healthy(observed.rows, batch)}
    unprobed = set(batch.unprobed)
    seen = [
        (row.id, row.status, row.id in healthy)
        for row in observed.rows
        if row.id in batch.instances and row.id not in acted and row.id not in unprobed and settled(row)
    ]
    try:
        await observed_writes.stamp_seen(ctx, seen)
    except Exception as exc:  # noqa: BLE001 - a stamp is informative only
        log.warning("tick.stamp_failed", error=f"{type(exc).__name__}: {exc}"[:300])


async def _act(ctx: TickContext, action: Action, result: TickResult) -> None:
    try:
        if isinstance(action, Update):
            done = await apply_update(ctx, action)
            result.actions["status" if action.status != action.read else "probe"] += int(done)
            if done and action.status != action.read:
                log.info(
                    "tick.instance.status",
                    instance_id=action.instance_id,
                    old=action.read,
                    new=action.status,
                    reason=action.reason,
                )
        elif isinstance(action, Destroy):
            result.actions[f"destroy_{action.mark}"] += int(await destroy(ctx, action))
        elif isinstance(action, DestroyOrphan):
            result.actions["destroy_orphan"] += int(await destroy_orphan(ctx, action))
        elif isinstance(action, Created):
            result.actions["created"] += int(await replenish.promote(ctx, action))
        elif isinstance(action, CreateFailed):
            failed = await replenish.create_failed(
                ctx, action.instance_id, action.reason, tell_services=action.tell_services
            )
            result.actions["create_failed"] += int(failed)
        elif isinstance(action, Resend):
            ctx.spawn(replenish.create_reserved(ctx, action.instance_id))
            result.actions["create_resent"] += 1
        elif isinstance(action, Create):
            result.actions["create"] += len(await replenish.refill(ctx, action))
    except Exception as exc:  # noqa: BLE001 - one bad instance never stops the tick
        result.failed_actions += 1
        log.warning(
            "tick.action_failed", action=type(action).__name__, error=f"{type(exc).__name__}: {exc}"[:300]
        )


async def recheck(ctx: TickContext, instance_id: str) -> dict[str, Any]:
    """Observe one instance now and apply the same rules a tick would (operator route)."""
    rows = await observe.read_rows(ctx, instance_id)
    if not rows:
        return {"action": "none", "reason": "no such row"}
    batch, error = await observe.observe(ctx, StatusBatchRequest(instance_ids=[instance_id]))
    if batch is None:
        return {"action": "none", "reason": error}
    observed = await observe.observed_from(ctx, rows, batch, everything=True)
    async with ctx.sessionmaker() as session:
        live = await pools.live_pools(session, ctx.settings)
        now = await state.db_now(session)
    target = ctx.target(live, may_create=False)
    result = TickResult(counts=count_statuses(rows), error=error)
    actions = [a for a in plan(observed, target, now) if not isinstance(a, Create | Resend)]
    await _act_all(ctx, observed, actions, result)
    return {"actions": dict(result.actions), "failedActions": result.failed_actions, "error": error}
