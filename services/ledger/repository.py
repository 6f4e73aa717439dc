"""The ledger's reads on the caller's session, for other domains: an instance's live resources, the
env it boots with, and every row as operators see it. Each runs inside a transaction its caller
owns and changes nothing, so none takes the instance's lock (the lifecycle in `service.py` does).
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ledger.schemas import LedgerEntry
from services.models import InstanceService
from shared.auth import SecretBox
from shared.schemas import ToolResource

# A row that still stands for a resource, or may: every status but `destroyed`.
LIVE = InstanceService.status != "destroyed"


async def list_resources(session: AsyncSession, *, instance_id: str) -> list[ToolResource]:
    rows = await session.scalars(
        select(InstanceService)
        .where(InstanceService.instance_id == instance_id, LIVE)
        .order_by(InstanceService.id)
    )
    return [
        ToolResource(tool_id=r.tool_id, resource_id=r.resource_id, env_key=r.env_key, status=r.status)
        for r in rows
    ]


async def tool_env(session: AsyncSession, *, box: SecretBox, instance_id: str) -> dict[str, str]:
    """The env vars an instance boots with for its active tools (decrypted, for the platform only)."""
    rows = await session.scalars(
        select(InstanceService).where(
            InstanceService.instance_id == instance_id, InstanceService.status == "active"
        )
    )
    return {r.env_key: box.decrypt(r.env_value) for r in rows if r.env_value}


async def list_entries(session: AsyncSession, *, instance_ids: list[str]) -> dict[str, list[LedgerEntry]]:
    """Every row of these instances, destroyed ones too (the audit trail), by instance; never env values."""
    rows = await session.scalars(
        select(InstanceService)
        .where(InstanceService.instance_id.in_(instance_ids))
        .order_by(InstanceService.id)
    )
    by_instance: dict[str, list[LedgerEntry]] = defaultdict(list)
    for row in rows:
        by_instance[row.instance_id].append(
            LedgerEntry(
                id=row.id,
                tool_id=row.tool_id,
                resource_id=row.resource_id,
                env_key=row.env_key,
                status=row.status,
                last_error=row.last_error,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
        )
    return by_instance
