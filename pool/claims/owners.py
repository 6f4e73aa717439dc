"""An owner's live agents (DESIGN.md §11): what `GET /api/pool/agents?ownerId=` lists and the
per-owner quota counts, defined once so the list an owner sees is what its limit is held against.

Live: an agent bound for the owner (`claimed`, `pending_acceptance`: `instances.owner_id`, which
the claim's success writes) or on its way (`claiming`: the owner is on the pending claim that holds
the instance, `claims.owner_id`). A crashed agent is not live: it serves nobody until it comes back
or an operator dismisses it.
"""

from __future__ import annotations

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from pool.models import Claim as ClaimRow
from pool.models import Instance as InstanceRow

LIVE_BOUND = ("claimed", "pending_acceptance")


async def live_agents_of(session: AsyncSession, owner_id: str) -> list[InstanceRow]:
    """The owner's live agents, oldest claim first (a `claiming` row does not name its owner yet)."""
    on_its_way = exists().where(
        ClaimRow.instance_id == InstanceRow.id,
        ClaimRow.status == "pending",
        ClaimRow.owner_id == owner_id,
    )
    statement = (
        select(InstanceRow)
        .where(
            or_(
                and_(InstanceRow.owner_id == owner_id, InstanceRow.status.in_(LIVE_BOUND)),
                and_(InstanceRow.status == "claiming", on_its_way),
            )
        )
        .order_by(InstanceRow.claimed_at.nulls_last(), InstanceRow.created_at, InstanceRow.id)
    )
    return list(await session.scalars(statement))
