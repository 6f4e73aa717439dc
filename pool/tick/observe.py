"""The observe step of a tick (`pool.tick.reconcile`): the pool's rows, what services reports
about the instances a tick chose (`pool.tick.selection`), and the runtimes it asks.

- Rows: every row's plan columns as slotted `Row`s, read through a cursor in chunks (the driver's
  records for 10,000 rows never sit in memory at once); the gateway tokens only of the instances
  whose runtime is asked.
- `POST services /status/batch` is one attempt (a retry would repeat the whole observation,
  platform calls included; the next tick is the retry); services down is an outcome, not a crash.
- A row neither asked nor reported is no observation (`Observed.asked`).
"""

from __future__ import annotations

from sys import intern
from typing import cast

from sqlalchemy import select

from pool.models import Instance
from pool.status import Status
from pool.status_batch import Batch
from pool.tick import runtimes, selection
from pool.tick.context import TickContext
from pool.tick.plan import Observed, Row
from shared.logging import get_logger
from shared.schemas import PlatformList, StatusBatchRequest

log = get_logger("pool.tick")


async def read_rows(ctx: TickContext, instance_id: str | None = None) -> list[Row]:
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


async def tokens_of(ctx: TickContext, ids: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """(url, encrypted gateway token) of the instances whose runtime the tick asks."""
    if not ids:
        return {}
    query = select(Instance.id, Instance.url, Instance.gateway_token_enc).where(Instance.id.in_(ids))
    async with ctx.sessionmaker.begin() as session:
        return {r[0]: (r[1], r[2]) for r in await session.execute(query)}


def whole(ctx: TickContext) -> bool:
    """Rotation off: every tick observes every instance and lists the platforms (the old tick)."""
    return ctx.settings.observe_rotation_seconds <= 0


def request_for(ctx: TickContext, chosen: selection.Selection) -> StatusBatchRequest:
    if whole(ctx):
        return StatusBatchRequest()
    return StatusBatchRequest(instance_ids=chosen.observe, platform_ids=chosen.platform)


async def observe(
    ctx: TickContext, request: StatusBatchRequest | None = None
) -> tuple[Batch | None, str | None]:
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


async def platforms(ctx: TickContext) -> PlatformList | None:
    """Services' platforms for the status API, the dashboard and the metrics; read each tick (two
    queries in services, no platform call). A failure keeps the last view."""
    try:
        return await ctx.services.platforms()
    except Exception as exc:  # noqa: BLE001 - informative only: the tick goes on without it
        log.warning("tick.platforms_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return None


async def observed_from(
    ctx: TickContext,
    rows: list[Row],
    batch: Batch | None,
    *,
    asked: frozenset[str] | None = None,
    everything: bool = False,
) -> Observed:
    """`asked`: the ids the tick asked services about (None: all); see `Observed.asked`."""
    if batch is None:
        return Observed(rows, None)
    ask, not_asked = await runtimes.select(ctx, rows, batch, everything=everything)
    tokens = await tokens_of(ctx, ask)
    urls = {
        i: (seen.url if (seen := batch.instances.get(i)) and seen.url else tokens.get(i, (None, None))[0])
        for i in ask
    }
    answers = await runtimes.ask(ctx, ask, urls, {i: tokens.get(i, (None, None))[1] for i in ask})
    # Asked but unanswerable (no url or token): an unreachable runtime, as before.
    answers.update({i: None for i in ask if i not in answers})
    return Observed(rows, batch, answers, frozenset(not_asked), asked)
