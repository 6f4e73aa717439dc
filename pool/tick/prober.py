"""The starting prober: promotes `starting` instances within seconds of readiness.

It asks the instances directly (`/pool/health`, then `/convos/status` with the instance's own
token), never the platform, so it can run every couple of seconds. It only promotes and
taints; deciding death stays with the full reconcile, which sees the deploy status too.

It also follows creates between ticks (`follow_creates`): one `/status/batch` about the `creating`
rows only (services asks no platform about creates not yet made), so an instance services has
just made becomes `starting` within seconds, not at the next tick; a failed create is removed
as the tick would. A create services does not know is left to the tick (it has the bound).
"""

from __future__ import annotations

from sqlalchemy import func, select

from pool.models import Instance
from pool.status import Observation, decide
from pool.tick import replenish
from pool.tick.context import TickContext
from pool.tick.instance_writes import apply_update, destroy
from pool.tick.plan import Created, CreateFailed, Destroy, Row, Update, plan_create
from pool.tick.probes import bounded, healthy, runtime_status
from shared.logging import get_logger
from shared.schemas import StatusBatchRequest

log = get_logger("pool.tick.prober")


async def follow_creates(ctx: TickContext) -> int:
    """Promote the creates services made, remove the ones it failed; returns how many."""
    async with ctx.sessionmaker.begin() as session:
        found = await session.execute(
            select(Instance.id, Instance.created_at, Instance.status_changed_at, func.now()).where(
                Instance.status == "creating"
            )
        )
        rows = [(Row(r[0], "creating", r[1], r[2]), r[3]) for r in found]
    if not rows:
        return 0
    try:
        batch = await ctx.services.status_batch(
            StatusBatchRequest(instance_ids=[row.id for row, _ in rows], probe=False),
            timeout=ctx.settings.status_batch_timeout_seconds,
        )
    except Exception as exc:  # noqa: BLE001 - the tick follows them too
        log.warning("tick.prober.creates_unobserved", error=f"{type(exc).__name__}: {exc}"[:300])
        return 0
    changed = 0
    for row, now in rows:
        action = plan_create(row, batch, ctx.target(), now)
        try:
            if isinstance(action, Created):
                changed += int(await replenish.promote(ctx, action))
            elif isinstance(action, CreateFailed) and action.tell_services:
                changed += int(await replenish.create_failed(ctx, row.id, action.reason, tell_services=True))
        except Exception as exc:  # noqa: BLE001 - the next probe or tick retries
            log.warning("tick.prober.failed", instance_id=row.id, error=f"{type(exc).__name__}: {exc}"[:300])
    return changed


async def probe_starting(ctx: TickContext) -> int:
    """Returns how many instances changed status (creates followed, then starting ones probed)."""
    followed = await follow_creates(ctx)
    async with ctx.sessionmaker.begin() as session:
        found = await session.execute(
            select(
                Instance.id,
                Instance.url,
                Instance.gateway_token_enc,
                # Age on the database's clock, the one that stamped status_changed_at.
                func.extract("epoch", func.now() - Instance.status_changed_at),
            ).where(Instance.status == "starting", Instance.url.is_not(None))
        )
        rows = [(r[0], str(r[1]), r[2], float(r[3])) for r in found]
    changed = await bounded(rows, ctx.settings.probe_concurrency, lambda row: _probe_one(ctx, *row))
    if any(changed):
        ctx.on_idle()  # a promotion to idle goes to the queue's head first
    return followed + sum(changed)


async def _probe_one(ctx: TickContext, instance_id: str, url: str, token_enc: str | None, age: float) -> bool:
    if not await healthy(ctx, url):
        return False
    runtime = await runtime_status(ctx, url, token_enc)
    if runtime is None:
        return False
    # A ready health endpoint means the deploy is serving; the platform is not asked.
    decision = decide(
        "starting", Observation("running", healthy=True, runtime=runtime, age_seconds=age), ctx.rules
    )
    try:
        if decision.action == "set":
            update = Update(instance_id, "starting", decision.status, 0, "running", True, "ready (prober)")
            done = await apply_update(ctx, update)
            if done:
                log.info("tick.instance.status", instance_id=instance_id, old="starting", new=decision.status)
            return done
        if decision.action == "destroy":
            return await destroy(ctx, Destroy(instance_id, "starting", decision.status, decision.reason))
    except Exception as exc:  # noqa: BLE001 - the next probe or tick retries
        log.warning("tick.prober.failed", instance_id=instance_id, error=f"{type(exc).__name__}: {exc}"[:300])
    return False
