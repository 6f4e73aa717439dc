"""One tick: observe → plan → act → record.

- Observe afresh every tick what can have changed (`pool.tick.selection`: starting, failing,
  marked by an event or the listing, plus a bounded rotation of the steady rest): the pool's
  rows, `POST services /status/batch` about those (one attempt: a retry would repeat the whole
  observation, platform calls included; the next tick is the retry), and `/convos/status` of the
  healthy instances whose state the plan could change (`pool.tick.runtimes`). A row not observed
  is no observation. If services does not answer, nothing changes. The platform's full listing
  is the separate safety net (`pool.tick.listing`).
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
from dataclasses import dataclass, field
from sys import intern
from typing import Any, cast

from sqlalchemy import select

from pool.callbacks import events as instance_events
from pool.claims import recovery as claims_recovery
from pool.models import Instance
from pool.status import Status
from pool.templates import rollouts
from pool.tick import observed_writes, pools, replenish, runtimes, selection, state
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
from shared.schemas import PlatformList, StatusBatch, StatusBatchRequest

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
    rows = await _read_rows(ctx)
    chosen = await selection.select(ctx, rows)
    batch, error = await _observe(ctx, _request(ctx, chosen))
    if batch is None:
        ctx.observe_soon(chosen.marked)  # still to be observed
    # Services unreachable: not asked again (its retries would only lengthen a failed tick).
    platforms = await _platforms(ctx) if batch is not None else None
    observed = await _observed(ctx, rows, batch, asked=frozenset(chosen.observe))
    async with ctx.sessionmaker.begin() as session:
        may_create = await state.may_create(session, ctx.fleet)
        live = await pools.live_pools(session, ctx.settings)
        now = await state.db_now(session)  # rows' ages on the clock that stamped them
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
        summary["orphans_on_platform"] = (
            len(batch.orphans) if batch.fleet is None and _whole(ctx) else ctx.listing.orphans
        )
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
    if ctx.metrics is not None:
        ctx.metrics.observe_tick(seconds)
    return result


async def _release_abandoned_claims(ctx: TickContext) -> None:
    """`claiming` is never planned on, so a claim whose pool died mid-provision would hold its
    instance forever: the claims' upkeep ends such claims, recovers every `claiming` instance no
    pending claim holds (reset → idle, else dead) and prunes old claim records."""
    await claims_recovery.upkeep(ctx.sessionmaker, ctx.instances, ctx.box, ctx.settings)


async def _read_rows(ctx: TickContext, instance_id: str | None = None) -> list[Row]:
    """Every row's plan columns (slotted `Row`s: ~10,000 of them per tick); the gateway tokens
    are read later, only for the instances whose runtime a tick asks."""
    query = select(
        Instance.id,
        Instance.status,
        Instance.created_at,
        Instance.status_changed_at,
        Instance.failed_probes,
        Instance.conversation_id,
        Instance.deploy_status,
        Instance.template_id,
        Instance.template_version,
    )
    if instance_id is not None:
        query = query.where(Instance.id == instance_id)
    rows: list[Row] = []
    # Read in chunks through a cursor, so the driver's records for 10,000 rows never sit in memory
    # at once (the peak RSS is the high-water mark: Python keeps what it once held); the few
    # distinct words (status, deploy status, template) are shared rather than copied per row.
    async with ctx.sessionmaker.begin() as session:
        found = await session.stream(query.execution_options(yield_per=READ_CHUNK))
        async for r in found:
            rows.append(
                Row(r[0], cast(Status, intern(r[1])), r[2], r[3], r[4], r[5], _word(r[6]), intern(r[7]), r[8])
            )
    return rows


READ_CHUNK = 1000


def _word(value: str | None) -> str | None:
    return None if value is None else intern(value)


async def _tokens(ctx: TickContext, ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """(url, encrypted gateway token) of the instances whose runtime the tick asks."""
    if not ids:
        return {}
    query = select(Instance.id, Instance.url, Instance.gateway_token_enc).where(Instance.id.in_(ids))
    async with ctx.sessionmaker.begin() as session:
        return {r[0]: (r[1], r[2]) for r in await session.execute(query)}


def _whole(ctx: TickContext) -> bool:
    """Rotation off: every tick observes every instance and lists the platforms (the old tick)."""
    return ctx.settings.observe_rotation_seconds <= 0


def _request(ctx: TickContext, chosen: selection.Selection) -> StatusBatchRequest:
    if _whole(ctx):
        return StatusBatchRequest()
    return StatusBatchRequest(instance_ids=chosen.observe, platform_ids=chosen.platform)


async def _observe(
    ctx: TickContext, request: StatusBatchRequest | None = None
) -> tuple[StatusBatch | None, str | None]:
    try:
        batch = await ctx.services.status_batch(
            request or StatusBatchRequest(), timeout=ctx.settings.status_batch_timeout_seconds
        )
    except Exception as exc:  # noqa: BLE001 - services down is an outcome, not a crash
        log.warning("tick.observe_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return None, f"services unreachable: {type(exc).__name__}"
    if not batch.platform_ok:
        return batch, f"platform error: {batch.platform_error or 'unknown'}"[:300]
    return batch, None


async def _platforms(ctx: TickContext) -> PlatformList | None:
    """Services' platforms for the status API, the dashboard and the metrics; read each tick (two
    queries in services, no platform call). A failure keeps the last view."""
    try:
        return await ctx.services.platforms()
    except Exception as exc:  # noqa: BLE001 - informative only: the tick goes on without it
        log.warning("tick.platforms_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return None


async def _observed(
    ctx: TickContext,
    rows: list[Row],
    batch: StatusBatch | None,
    *,
    asked: frozenset[str] | None = None,
    everything: bool = False,
) -> Observed:
    """`asked`: the ids the tick asked services about (None: all); see `Observed.asked`."""
    if batch is None:
        return Observed(rows, None)
    ask, not_asked = runtimes.select(ctx, rows, batch, everything=everything)
    tokens = await _tokens(ctx, ask)
    urls = {
        i: (seen.url if (seen := batch.instances.get(i)) and seen.url else tokens.get(i, (None, None))[0])
        for i in ask
    }
    answers = await runtimes.ask(ctx, ask, urls, {i: tokens.get(i, (None, None))[1] for i in ask})
    # Asked but unanswerable (no url or token): an unreachable runtime, as before.
    answers.update({i: None for i in ask if i not in answers})
    return Observed(rows, batch, answers, frozenset(not_asked), asked)


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
    rows = await _read_rows(ctx, instance_id)
    if not rows:
        return {"action": "none", "reason": "no such row"}
    batch, error = await _observe(ctx, StatusBatchRequest(instance_ids=[instance_id]))
    if batch is None:
        return {"action": "none", "reason": error}
    observed = await _observed(ctx, rows, batch, everything=True)
    async with ctx.sessionmaker() as session:
        live = await pools.live_pools(session, ctx.settings)
        now = await state.db_now(session)
    target = ctx.target(live, may_create=False)
    result = TickResult(counts=count_statuses(rows), error=error)
    actions = [a for a in plan(observed, target, now) if not isinstance(a, Create | Resend)]
    await _act_all(ctx, observed, actions, result)
    return {"actions": dict(result.actions), "failedActions": result.failed_actions, "error": error}
