"""Sync (DESIGN.md §11): push a template's current instructions to the agents claimed from it,
through each running instance (`POST /convos/instructions`, the runtime's optional
`instructions` capability announced in `/pool/health`), never a redeploy: the agent keeps its
conversation and its state.

Each agent is its own outcome: one that cannot take instructions (its runtime lacks the
capability) is skipped with the reason, one that does not answer is reported failed, and neither
stops the others. What an agent took is recorded on its row (`instructions`,
`template_synced_at`), only while it is still claimed from that template. No database
connection is held while instances are called; the calls run `POOL_SYNC_CONCURRENCY` at a time,
each within `POOL_SYNC_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pool.deps import PoolState
from pool.models import Instance as InstanceRow
from pool.models import Template as TemplateRow
from pool.models import TemplateVersion as VersionRow
from pool.templates.schemas import SyncOutcome, TemplateSynced
from shared.errors import Conflict, NotFound, UpstreamError
from shared.logging import get_logger

log = get_logger("pool.templates.sync")

CAPABILITY = "instructions"
# Agents a sync reaches: bound to a conversation and serving it (a crashed one cannot be told).
SYNCABLE = ("claimed", "pending_acceptance")


async def current_instructions(session: AsyncSession, template_id: str) -> tuple[int, str]:
    """The template's current version and its instructions; 409 when that version has none (the
    agents keep the ones their claims gave them)."""
    template = await session.get(TemplateRow, template_id)
    if template is None:
        raise NotFound(f"no template {template_id}")
    version = await session.get(VersionRow, (template_id, template.current_version))
    assert version is not None, "a template always has its current version"
    if version.instructions is None:
        raise Conflict(
            f"template {template_id} version {version.version} has no instructions to push; "
            "its agents keep the instructions their claims gave them"
        )
    return version.version, version.instructions


async def sync_template(pool: PoolState, template_id: str) -> TemplateSynced:
    async with pool["sessionmaker"]() as session:
        version, instructions = await current_instructions(session, template_id)
        rows = list(
            await session.scalars(
                select(InstanceRow)
                .where(InstanceRow.template_id == template_id, InstanceRow.status.in_(SYNCABLE))
                .order_by(InstanceRow.claimed_at, InstanceRow.id)
            )
        )
    slots = asyncio.Semaphore(pool["settings"].sync_concurrency)

    async def one(row: InstanceRow) -> SyncOutcome:
        async with slots:
            return await _sync_one(pool, row, instructions)

    outcomes = list(await asyncio.gather(*(one(row) for row in rows)))
    counts = {kind: sum(o.outcome == kind for o in outcomes) for kind in ("synced", "skipped", "failed")}
    log.info("template.synced", template_id=template_id, version=version, **counts)
    return TemplateSynced(template_id=template_id, version=version, instances=outcomes, **counts)


async def sync_instance(pool: PoolState, instance_id: str) -> SyncOutcome:
    """One agent: 409 when it cannot take instructions (not claimed, its runtime lacks the
    capability, its template has none), 502 when it does not answer."""
    async with pool["sessionmaker"]() as session:
        row = await session.get(InstanceRow, instance_id)
        if row is None:
            raise NotFound(f"no instance {instance_id}")
        if row.status not in SYNCABLE:
            raise Conflict(f"instance {instance_id} is {row.status}: only a claimed agent can be synced")
        _, instructions = await current_instructions(session, row.template_id)
    outcome = await _sync_one(pool, row, instructions)
    if outcome.outcome == "failed":
        raise UpstreamError(outcome.reason or "the instance did not take the instructions")
    if outcome.outcome == "skipped":
        raise Conflict(outcome.reason or "the instance cannot take instructions")
    return outcome


async def _sync_one(pool: PoolState, row: InstanceRow, instructions: str) -> SyncOutcome:
    timeout = pool["settings"].sync_timeout_seconds
    try:
        if row.url is None or row.gateway_token_enc is None:
            raise UpstreamError("instance has no URL or gateway token")
        try:
            token = pool["box"].decrypt(row.gateway_token_enc)
        except ValueError as exc:
            raise UpstreamError("instance gateway token cannot be decrypted") from exc
        capabilities = await pool["instances"].capabilities(row.url, timeout=timeout)
        if CAPABILITY not in capabilities:
            announced = ", ".join(capabilities) or "none"
            return _skipped(
                row.id, f"its runtime lacks the '{CAPABILITY}' capability (announces: {announced})"
            )
        await pool["instances"].set_instructions(row.url, token, instructions, timeout=timeout)
    except UpstreamError as exc:
        log.warning("template.sync_failed", instance_id=row.id, error=exc.message)
        return SyncOutcome(instance_id=row.id, outcome="failed", reason=exc.message)
    synced_at = await _record(pool, row, instructions)
    if synced_at is None:
        return _skipped(row.id, "it stopped being a claimed agent of the template during the sync")
    return SyncOutcome(instance_id=row.id, outcome="synced", template_synced_at=synced_at)


def _skipped(instance_id: str, reason: str) -> SyncOutcome:
    return SyncOutcome(instance_id=instance_id, outcome="skipped", reason=reason)


async def _record(pool: PoolState, row: InstanceRow, instructions: str) -> datetime | None:
    """Record what the agent now runs on, while it is still claimed from that template."""
    async with pool["sessionmaker"]() as session, session.begin():
        synced_at: datetime | None = await session.scalar(
            update(InstanceRow)
            .where(
                InstanceRow.id == row.id,
                InstanceRow.template_id == row.template_id,
                InstanceRow.status.in_(SYNCABLE),
            )
            .values(instructions=instructions, template_synced_at=func.now(), updated_at=func.now())
            .returning(InstanceRow.template_synced_at)
        )
    return synced_at
