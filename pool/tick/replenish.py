"""Creating instances without over-creating.

Rows are reserved as `creating` before services is called, in one transaction that holds a
transaction-level advisory lock while it counts. So two ticks, two replicas, a claim burst and
an operator all see each other's in-flight creates, and the deficit is never created twice.

Who decides how many: the tick's plan (`Create.count`, backoff already weighed), the refill after
a claim (the deficit, `pool.tick.plan.replenish_count`, unless creates back off) or an operator
(an explicit count). The count taken under the lock only ever lowers the tick's: what another
replica's refill reserved since the tick read its rows is not created twice.

Services' create is asynchronous (DESIGN.md §3): `create_reserved` only hands the create over
(one short call, answered 202 with the create's phase), with the instance's gateway token, which
the pool made and stored encrypted in the row it reserved. The row stays `creating` while
services works on it, however long its platform makes it wait; the tick follows the phase
`/status/batch` reports (`pool.tick.plan`): `deploying` promotes the row to `starting`
(`promote`), `failed` removes it and counts a failed create (`create_failed`).
"""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pool import locks
from pool.activity import log as event_log
from pool.models import Instance, TemplateVersion
from pool.templates.schemas import DEFAULT_TEMPLATE_ID
from pool.tick import pools, state
from pool.tick.context import TickContext
from pool.tick.plan import Create, Created
from pool.tick.targets import PoolTarget, replenish_counts
from shared.auth import mint_token
from shared.errors import AppError, NotFound, TransientError
from shared.ids import new_instance_id
from shared.logging import get_logger
from shared.schemas import InstanceCreate

log = get_logger("pool.tick.replenish")


def instance_name(instance_id: str) -> str:
    return f"agent-{instance_id}"


async def reserve(
    ctx: TickContext, count: int | Create | None, *, template_id: str = DEFAULT_TEMPLATE_ID
) -> list[str]:
    """Insert `creating` rows, each for its template's current version, and return their ids:
    - `None` (after a claim): every template's deficit, nothing while creates back off;
    - a `Create` (the tick's plan): its count, lowered to its template's deficit counted under the lock;
    - an int (an operator): that many of `template_id`, capped at max_total.
    """
    async with ctx.sessionmaker.begin() as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": locks.replenish(ctx.fleet)})
        rows = await session.execute(
            select(Instance.template_id, Instance.status, func.count()).group_by(
                Instance.template_id, Instance.status
            )
        )
        counts: Counter[tuple[str, str]] = Counter({(str(r[0]), str(r[1])): int(r[2]) for r in rows})
        live = {p.template_id: p for p in await pools.live_pools(session, ctx.settings)}
        wanted: dict[tuple[str, int], int]
        if count is None:
            may_create = await state.may_create(session, ctx.fleet)
            deficits = replenish_counts(counts, ctx.target(tuple(live.values()), may_create=may_create))
            wanted = {(t, v): n for t, count in deficits.items() for v, n in live[t].versions_for(count)}
        elif isinstance(count, Create):
            wanted = {(count.template_id, count.version): _planned(count, counts, live, ctx)}
        elif template_id not in live:
            raise NotFound(f"no live template {template_id}")
        else:
            room = ctx.settings.max_total - sum(counts.values())
            wanted = {(template_id, live[template_id].version): max(0, min(count, room))}
        made = [(new_instance_id(), t, v) for (t, v), n in wanted.items() for _ in range(n)]
        if made:
            # The instance's gateway token is made here, stored (encrypted) before services hears
            # of it: no answer has to carry it back, and a lost answer loses nothing.
            await session.execute(
                insert(Instance),
                [
                    {
                        "id": i,
                        "name": instance_name(i),
                        "status": "creating",
                        "template_id": t,
                        "template_version": v,
                        "gateway_token_enc": ctx.box.encrypt(mint_token("pool_gw")),
                    }
                    for i, t, v in made
                ],
            )
            actor = event_log.OPERATOR if isinstance(count, int) else event_log.POOL
            await event_log.creates_requested(session, made, actor=actor)
    return [i for i, _, _ in made]


def _planned(
    create: Create, counts: Counter[tuple[str, str]], live: dict[str, PoolTarget], ctx: TickContext
) -> int:
    """The tick's create, lowered to its template's deficit counted now; a canary create also to
    the canaries still missing. A create of a version the template no longer uses makes nothing."""
    pool = live.get(create.template_id)
    if pool is None:
        return 0
    deficit = replenish_counts(counts, ctx.target(tuple(live.values()))).get(create.template_id, 0)
    if create.version == pool.canary_version:
        return min(create.count, deficit, pool.canary_missing)
    return min(create.count, deficit) if create.version == pool.version else 0


async def create_reserved(ctx: TickContext, instance_id: str) -> bool:
    """Hand a reserved create to services; True when services holds it (any phase but failed).
    A transport failure keeps the row: services may hold the create after all, and the tick
    learns which from the batch (`pool.tick.plan`: a create services never heard of is dropped
    after `Target.create_lost_seconds`)."""
    async with ctx.slots():
        async with ctx.sessionmaker.begin() as session:
            found = (
                await session.execute(
                    select(Instance.gateway_token_enc, TemplateVersion)
                    .join(
                        TemplateVersion,
                        (TemplateVersion.template_id == Instance.template_id)
                        & (TemplateVersion.version == Instance.template_version),
                    )
                    .where(Instance.id == instance_id, Instance.status == "creating")
                )
            ).first()
        token_enc, version = found if found is not None else (None, None)
        if token_enc is None or version is None:
            return False  # killed before it was handed over
        body = create_request(ctx, instance_id, version, gateway_token=ctx.box.decrypt(token_enc))
        try:
            accepted = await ctx.services.create_instance(body)
        except TransientError as exc:
            log.warning("tick.instance.create_unanswered", instance_id=instance_id, error=f"{exc}"[:300])
            return False
        except Exception as exc:  # noqa: BLE001 - refused: free the reservation
            await create_failed(ctx, instance_id, f"{type(exc).__name__}: {exc}")
            return False
        if accepted.phase == "failed":
            await create_failed(ctx, instance_id, accepted.error or "services failed the create")
            return False
        async with ctx.sessionmaker.begin() as session:
            kept = await session.get(Instance, instance_id) is not None
        if not kept:
            # Killed while services was accepting it: undo the create.
            log.info("tick.instance.create_superseded", instance_id=instance_id)
            try:
                await ctx.services.destroy_instance(instance_id)
            except AppError as exc:
                # The tick's orphan rule retries once the grace period has passed.
                log.warning("tick.instance.destroy_failed", instance_id=instance_id, error=exc.message)
            return False
        log.info("tick.instance.create_accepted", instance_id=instance_id, phase=accepted.phase)
        return True


def create_request(
    ctx: TickContext, instance_id: str, version: TemplateVersion, *, gateway_token: str
) -> InstanceCreate:
    """What services makes for one instance of a template version: its image, its tools, its
    env. A null image or tools is the deployment's (services' runtime image; POOL_TOOLS, or
    services' SERVICES_DEFAULT_TOOLS when that is unset too)."""
    tools = version.tools if version.tools is not None else ctx.settings.tools
    env = dict(version.env)
    if version.model:
        env["AGENT_MODEL"] = version.model
    return InstanceCreate(
        instance_id=instance_id,
        name=instance_name(instance_id),
        tools=list(tools) if tools is not None else None,
        env=env,
        image=version.image,
        gateway_token=gateway_token,
    )


async def promote(ctx: TickContext, action: Created) -> bool:
    """Services made the instance (phase `deploying`): the row becomes `starting` with its url,
    and the create counts as a success (ends a create backoff)."""
    async with ctx.sessionmaker.begin() as session:
        result = await session.execute(
            update(Instance)
            .where(Instance.id == action.instance_id, Instance.status == "creating")
            .values(
                status="starting",
                url=action.url,
                deploy_status=action.deploy_status,
                status_changed_at=func.now(),
            )
        )
        kept = bool(result.rowcount == 1)  # type: ignore[attr-defined]
        if kept:
            await _record(ctx, session, None)
            await event_log.add(session, action.instance_id, "instance.created", actor=event_log.POOL)
    if kept:
        log.info("tick.instance.created", instance_id=action.instance_id)
    return kept


async def create_instances(
    ctx: TickContext, count: int | None = None, *, template_id: str = DEFAULT_TEMPLATE_ID
) -> list[str]:
    """Reserve and create `count` instances of a template (None: every template's deficit);
    returns the ids services accepted (each `creating` until the tick sees it made)."""
    ids = await reserve(ctx, count, template_id=template_id)
    created = []
    for instance_id, ok in zip(ids, await _create_all(ctx, ids), strict=True):
        if ok:
            created.append(instance_id)
    return created


async def refill(ctx: TickContext, planned: Create | None = None) -> list[str]:
    """Reserve and create in the background: the tick's `planned` create, or (None, after a claim)
    every template's deficit now. Returns the ids reserved."""
    ids = await reserve(ctx, planned)
    for instance_id in ids:
        ctx.spawn(create_reserved(ctx, instance_id))
    return ids


async def _create_all(ctx: TickContext, ids: list[str]) -> list[bool]:
    return list(await asyncio.gather(*(create_reserved(ctx, i) for i in ids)))


async def create_failed(
    ctx: TickContext, instance_id: str, error: str, *, tell_services: bool = False
) -> bool:
    """A create that will not become an instance: the row goes and the failure counts toward the
    create backoff. `tell_services`: services holds a record of it (a failed create's row), which
    its destroy removes along with anything the rollback left."""
    log.warning("tick.instance.create_failed", instance_id=instance_id, error=error[:300])
    if ctx.metrics is not None:
        ctx.metrics.record_create_failure()
    if tell_services:
        await ctx.services.destroy_instance(instance_id)
    async with ctx.sessionmaker.begin() as session:
        result = await session.execute(
            delete(Instance).where(Instance.id == instance_id, Instance.status == "creating")
        )
        await event_log.add(session, instance_id, "create.failed", actor=event_log.POOL, error=error)
        await _record(ctx, session, error)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _record(ctx: TickContext, session: AsyncSession, error: str | None) -> None:
    settings = ctx.settings
    await state.record_create(
        session,
        ctx.fleet,
        error=error,
        after=settings.create_backoff_after_failures,
        base_seconds=settings.create_backoff_base_seconds,
        max_seconds=settings.create_backoff_max_seconds,
    )
