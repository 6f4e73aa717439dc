"""The ledger: every external resource is in `instance_services` before it exists at its provider.

    creating ──provider made it──▶ active ──▶ destroying ──provider deleted it──▶ destroyed
        └──provider failed──▶ failed (kept: the next provision retries it, destroy or the sweep clears it)

Each step is its own short committed transaction, so a crash at any point leaves a row that the
next provision, destroy or sweep can finish. Every tool operation on an instance (provision,
destroy of one tool, rollback of a failed create, and the destroy of the instance in
services.instances) holds the instance's lock (`services.locks.hold_instance`) from its first read
to its last write, so a destroy never runs between a provision's row and its resource: it waits,
then revokes what the provision made. Under that lock a `creating` row belongs to nobody alive
(its owner's lock died with its connection) and is taken over at once; the provider's provision
is idempotent per instance, so it re-finds the resource. Every transition is still conditional on
the status it read, and a provision whose row left `creating` under it revokes what it made.
The partial unique index (one live row per instance and tool) backs this up in the schema.

Reads of the rows on a caller's session (an instance's resources and boot env, the operator's
view) are in `repository.py`; the operator's actions on an instance's OpenRouter key in
`openrouter_keys.py`.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import locks
from services.ledger.repository import LIVE
from services.models import InstanceInfra, InstanceService
from services.tools.base import ToolProvider
from services.tools.registry import get_tool
from shared.auth import SecretBox
from shared.errors import AppError, Conflict, NotFound, UpstreamError
from shared.logging import get_logger
from shared.schemas import ToolGrant

log = get_logger("services.ledger")

Sessionmaker = async_sessionmaker[AsyncSession]


def _grant(row: InstanceService, box: SecretBox, *, reveal: bool) -> ToolGrant:
    value = box.decrypt(row.env_value) if reveal and row.env_value else None
    return ToolGrant(
        instance_id=row.instance_id,
        tool_id=row.tool_id,
        resource_id=row.resource_id,
        env_key=row.env_key,
        env_value=value,
        status=row.status,
    )


def _failure(what: str, exc: Exception) -> str:
    message = exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
    return f"{what}: {message}"[:500]


async def _claim_row(
    session: AsyncSession, *, instance_id: str, tool_id: str, provider: ToolProvider
) -> tuple[InstanceService | None, int]:
    """Under the instance's lock: the active row, or the id of the `creating` row this caller owns."""
    infra = await session.get(InstanceInfra, instance_id)
    if infra is None:
        raise NotFound(f"instance {instance_id} not found")
    if infra.state == "destroying":
        raise Conflict(f"instance {instance_id} is being destroyed")
    row = await session.scalar(
        select(InstanceService).where(
            InstanceService.instance_id == instance_id, InstanceService.tool_id == tool_id, LIVE
        )
    )
    if row is None:
        inserted = await session.scalar(
            insert(InstanceService)
            .values(instance_id=instance_id, tool_id=tool_id, env_key=provider.env_key)
            .on_conflict_do_nothing(
                index_elements=["instance_id", "tool_id"], index_where=text("status <> 'destroyed'")
            )
            .returning(InstanceService.id)
        )
        if inserted is None:  # only a caller not holding the lock (an older replica) gets here
            raise Conflict(f"{tool_id} is being provisioned for {instance_id} elsewhere; try again")
        return None, inserted
    if row.status == "active":
        return row, row.id
    if row.status == "destroying":
        raise Conflict(f"{tool_id} of {instance_id} is still being destroyed; destroy it again first")
    # `failed`, or `creating` left by an owner that died (a live owner would hold the lock).
    taken = await session.execute(
        update(InstanceService)
        .where(InstanceService.id == row.id, InstanceService.status == row.status)
        .values(status="creating", updated_at=func.clock_timestamp())
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"{tool_id} of {instance_id} changed under the provision; try again")
    return None, row.id


async def provision_tool(
    sessionmaker: Sessionmaker,
    *,
    tools: dict[str, ToolProvider],
    box: SecretBox,
    instance_id: str,
    tool_id: str,
    reveal: bool,
) -> ToolGrant:
    """Provision one tool for an instance, or return the one it has. `reveal` only for the instance."""
    provider = get_tool(tools, tool_id)
    async with locks.hold_instance(sessionmaker, instance_id) as held:
        async with held.begin() as session:
            active, row_id = await _claim_row(
                session, instance_id=instance_id, tool_id=tool_id, provider=provider
            )
            if active is not None:
                return _grant(active, box, reveal=reveal)
        row = await _make_resource(held, provider=provider, tool_id=tool_id, box=box, row_id=row_id)
        return _grant(row, box, reveal=reveal)


async def _make_resource(
    sessionmaker: Sessionmaker, *, provider: ToolProvider, tool_id: str, box: SecretBox, row_id: int
) -> InstanceService:
    async with sessionmaker.begin() as session:
        row = await session.get_one(InstanceService, row_id)
        instance_id = row.instance_id
    mine = (InstanceService.id == row_id, InstanceService.status == "creating")
    try:
        grant = await provider.provision(instance_id)
    except Exception as exc:
        reason = _failure(f"{tool_id} provision failed", exc)
        async with sessionmaker.begin() as session:
            await session.execute(
                update(InstanceService).where(*mine).values(status="failed", last_error=reason)
            )
        log.warning("tool.provision.failed", instance_id=instance_id, tool_id=tool_id, error=reason)
        raise UpstreamError(reason) from exc
    async with sessionmaker.begin() as session:
        made: InstanceService | None = await session.scalar(
            update(InstanceService)
            .where(*mine)
            .values(
                status="active",
                resource_id=grant.resource_id,
                resource_meta=grant.meta,
                env_key=provider.env_key,
                env_value=box.encrypt(grant.env_value),
                last_error=None,
            )
            .returning(InstanceService)
        )
    if made is None:
        # The row left `creating` while the provider worked (someone without the lock): nothing
        # records this resource, so it must not outlive this call.
        try:
            await provider.revoke(grant.resource_id, dict(grant.meta))
        except Exception as exc:  # the vendor sweep finds it by name
            log.warning("tool.provision.revoke_failed", instance_id=instance_id, error=_failure(tool_id, exc))
        log.warning("tool.provision.superseded", instance_id=instance_id, tool_id=tool_id)
        raise Conflict(f"{tool_id} of {instance_id} was destroyed while it was being provisioned")
    log.info("tool.provisioned", instance_id=instance_id, tool_id=tool_id, resource_id=grant.resource_id)
    return made


async def destroy_row(sessionmaker: Sessionmaker, *, tools: dict[str, ToolProvider], row_id: int) -> None:
    """Delete the resource at its provider, then mark the row destroyed. Gone already is success.
    The caller holds the instance's lock (or, the sweep, knows no operation holds it)."""
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceService, row_id, with_for_update=True)
        if row is None or row.status == "destroyed":
            return
        row.status = "destroying"
        tool_id, resource_id, meta = row.tool_id, row.resource_id, dict(row.resource_meta)
        instance_id = row.instance_id
    if resource_id is not None:
        provider = tools.get(tool_id)
        if provider is None:
            raise UpstreamError(f"tool {tool_id} is not configured, so {resource_id} cannot be revoked")
        try:
            await provider.revoke(resource_id, meta)
        except NotFound:
            pass
        except Exception as exc:
            reason = _failure(f"{tool_id} revoke of {resource_id} failed", exc)
            async with sessionmaker.begin() as session:
                await session.execute(
                    update(InstanceService).where(InstanceService.id == row_id).values(last_error=reason)
                )
            raise UpstreamError(reason) from exc
    async with sessionmaker.begin() as session:
        await session.execute(
            update(InstanceService)
            .where(InstanceService.id == row_id, InstanceService.status == "destroying")
            .values(status="destroyed", env_value=None, last_error=None)
        )
    log.info("tool.destroyed", instance_id=instance_id, tool_id=tool_id, resource_id=resource_id)


async def destroy_tool(
    sessionmaker: Sessionmaker,
    *,
    tools: dict[str, ToolProvider],
    box: SecretBox,
    instance_id: str,
    tool_id: str,
    resource_id: str,
) -> ToolGrant:
    """Destroy one recorded resource; destroying one already destroyed succeeds."""
    async with locks.hold_instance(sessionmaker, instance_id) as held:
        async with held.begin() as session:
            row = await session.scalar(
                select(InstanceService)
                .where(
                    InstanceService.instance_id == instance_id,
                    InstanceService.tool_id == tool_id,
                    InstanceService.resource_id == resource_id,
                )
                .order_by(InstanceService.id.desc())
                .limit(1)
            )
        if row is None:
            raise NotFound(f"no {tool_id} resource {resource_id} recorded for instance {instance_id}")
        await destroy_row(held, tools=tools, row_id=row.id)
        async with held.begin() as session:
            row = await session.get_one(InstanceService, row.id)
        return _grant(row, box, reveal=False)


async def rollback_rows(
    sessionmaker: Sessionmaker, *, tools: dict[str, ToolProvider], instance_id: str
) -> None:
    """Undo a failed create: revoke what exists, then drop the rows (a confirmed rollback)."""
    async with locks.hold_instance(sessionmaker, instance_id) as held:
        await destroy_rows(held, tools=tools, instance_id=instance_id)
        async with held.begin() as session:
            await session.execute(delete(InstanceService).where(InstanceService.instance_id == instance_id))


async def destroy_rows(
    sessionmaker: Sessionmaker, *, tools: dict[str, ToolProvider], instance_id: str
) -> None:
    """Every live resource of the instance, revoked; the caller holds the instance's lock."""
    for row_id in await live_row_ids(sessionmaker, instance_id=instance_id):
        await destroy_row(sessionmaker, tools=tools, row_id=row_id)


async def live_row_ids(sessionmaker: Sessionmaker, *, instance_id: str) -> list[int]:
    async with sessionmaker.begin() as session:
        ids = await session.scalars(
            select(InstanceService.id)
            .where(InstanceService.instance_id == instance_id, LIVE)
            .order_by(InstanceService.id)
        )
        return list(ids)
