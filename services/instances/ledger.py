"""Read-only views of instances and their ledger for operators (`GET /instances`)."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.instances.schemas import Instance, InstancePage, LedgerEntry
from services.models import InstanceInfra, InstanceService
from shared.errors import NotFound


def _entry(row: InstanceService) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        tool_id=row.tool_id,
        resource_id=row.resource_id,
        env_key=row.env_key,
        status=row.status,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _instance(row: InstanceInfra, tools: list[InstanceService]) -> Instance:
    return Instance(
        instance_id=row.instance_id,
        name=row.name,
        provider=row.provider,
        state=row.state,
        url=row.url,
        deploy_status=row.deploy_status,
        runtime_image=row.runtime_image,
        platform_ref=dict(row.platform_ref or {}),
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        tools=[_entry(tool) for tool in tools],
    )


async def _ledger(session: AsyncSession, instance_ids: list[str]) -> dict[str, list[InstanceService]]:
    rows = await session.scalars(
        select(InstanceService)
        .where(InstanceService.instance_id.in_(instance_ids))
        .order_by(InstanceService.id)
    )
    by_instance: dict[str, list[InstanceService]] = defaultdict(list)
    for row in rows:
        by_instance[row.instance_id].append(row)
    return by_instance


async def get_instance(session: AsyncSession, *, instance_id: str) -> Instance:
    row = await session.get(InstanceInfra, instance_id)
    if row is None:
        raise NotFound(f"instance {instance_id} not found")
    return _instance(row, (await _ledger(session, [instance_id]))[instance_id])


async def list_instances(
    session: AsyncSession, *, state: str | None, after: str | None, limit: int
) -> InstancePage:
    """Ordered by instance id, keyset-paged: two queries per page whatever the fleet size."""
    query = select(InstanceInfra).order_by(InstanceInfra.instance_id).limit(limit + 1)
    if state is not None:
        query = query.where(InstanceInfra.state == state)
    if after is not None:
        query = query.where(InstanceInfra.instance_id > after)
    rows = list(await session.scalars(query))
    page, more = rows[:limit], len(rows) > limit
    ledger = await _ledger(session, [row.instance_id for row in page]) if page else {}
    return InstancePage(
        instances=[_instance(row, ledger.get(row.instance_id, [])) for row in page],
        next_after=page[-1].instance_id if more else None,
    )
