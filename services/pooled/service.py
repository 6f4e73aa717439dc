"""Pooled resources: operator-supplied secrets (Bankr wallet keys, pre-bought numbers) handed out
one per instance, because some vendors have no API to mint one per instance (specs/bankr.md).

Assignment takes the first free row with `FOR UPDATE SKIP LOCKED`, so concurrent provisions for
different instances never wait on or share a row; calls for the same instance queue on an advisory
lock, and the partial unique index (kind, instance_id) backs that up in the schema.
Values are stored encrypted and leave this module only as the Grant of the instance they are
assigned to.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import locks
from services.models import PooledResource
from services.tools.base import Grant, InventoryItem
from shared.auth import SecretBox
from shared.errors import Conflict, NotFound, TransientError
from shared.logging import get_logger

log = get_logger(__name__)


class PooledSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POOLED_", extra="ignore")

    # Pooled tools to offer, e.g. POOLED_TOOLS='["bankr"]'.
    tools: list[str] = []


class PoolExhausted(TransientError):
    """No free resource of this kind: the operator must add more (retrying later may succeed)."""


async def add_resource(
    session: AsyncSession,
    *,
    box: SecretBox,
    kind: str,
    label: str,
    value: str,
    resource_ref: str | None = None,
) -> PooledResource:
    row = PooledResource(
        kind=kind,
        label=label,
        value=box.encrypt(value),
        resource_ref=resource_ref,
        instance_id=None,
        assigned_at=None,
    )
    session.add(row)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"{kind} resource {resource_ref} is already in the pool") from exc
    return row


async def list_resources(session: AsyncSession, *, kind: str | None = None) -> list[PooledResource]:
    query = select(PooledResource).order_by(PooledResource.id)
    if kind:
        query = query.where(PooledResource.kind == kind)
    return list((await session.scalars(query)).all())


async def remove_resource(session: AsyncSession, *, resource_id: int) -> None:
    row = await session.get(PooledResource, resource_id, with_for_update=True)
    if row is None:
        raise NotFound(f"pooled resource {resource_id} not found")
    if row.instance_id is not None:
        raise Conflict(f"pooled resource {resource_id} is assigned to {row.instance_id}")
    await session.delete(row)


async def assign(session: AsyncSession, *, kind: str, instance_id: str) -> PooledResource | None:
    """The resource of this kind assigned to the instance: its existing one, else a free one, else None.

    Calls for one instance queue on an advisory lock (else ten of them could each lock a different
    free row and exhaust the pool); calls for different instances skip each other's locked rows.
    """
    await session.execute(select(locks.pooled_xact_lock(kind, instance_id)))
    held = await session.scalar(
        select(PooledResource).where(PooledResource.kind == kind, PooledResource.instance_id == instance_id)
    )
    if held is not None:
        return held
    free = (
        select(PooledResource.id)
        .where(PooledResource.kind == kind, PooledResource.instance_id.is_(None))
        .order_by(PooledResource.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    return await session.scalar(
        update(PooledResource)
        .where(PooledResource.id == free)
        .values(instance_id=instance_id, assigned_at=func.now())
        .returning(PooledResource)
    )


async def give_back(session: AsyncSession, *, kind: str, resource_id: int) -> bool:
    """Return a resource to the pool; False if it was not assigned (already returned)."""
    result = await session.execute(
        update(PooledResource)
        .where(PooledResource.kind == kind, PooledResource.id == resource_id)
        .where(PooledResource.instance_id.is_not(None))
        .values(instance_id=None, assigned_at=None)
        .returning(PooledResource.id)
    )
    return result.first() is not None


async def assign_in_own_transaction(
    sessionmaker: async_sessionmaker[AsyncSession], *, kind: str, instance_id: str
) -> PooledResource | None:
    for _ in range(2):
        try:
            async with sessionmaker() as session, session.begin():
                return await assign(session, kind=kind, instance_id=instance_id)
        except IntegrityError:
            # A concurrent call for the same instance won the race; the next pass reads its row.
            continue
    raise Conflict(f"could not assign a {kind} resource to {instance_id}")


class PooledProvider:
    """A tool whose resources come from the pool (a vendor with no API to mint one per instance)."""

    mode = "pooled"

    def __init__(
        self,
        name: str,
        env_key: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        box: SecretBox,
    ) -> None:
        self.name = name
        self.env_key = env_key
        self._sessionmaker = sessionmaker
        self._box = box

    async def provision(self, instance_id: str) -> Grant:
        row = await assign_in_own_transaction(self._sessionmaker, kind=self.name, instance_id=instance_id)
        if row is None:
            raise PoolExhausted(f"no free {self.name} resource in the pool; an operator must add some")
        log.info("tool.pooled.assigned", tool=self.name, instance_id=instance_id, pooled_id=row.id)
        return Grant(
            resource_id=str(row.id), env_value=self._box.decrypt(row.value), meta={"label": row.label}
        )

    async def revoke(self, resource_id: str, meta: dict[str, Any]) -> None:
        async with self._sessionmaker() as session, session.begin():
            returned = await give_back(session, kind=self.name, resource_id=int(resource_id))
        log.info("tool.pooled.returned", tool=self.name, pooled_id=resource_id, already_free=not returned)

    async def inventory(self) -> list[InventoryItem]:
        """What is assigned right now: the sweep returns assignments the ledger does not know."""
        async with self._sessionmaker() as session:
            rows = await session.scalars(
                select(PooledResource).where(
                    PooledResource.kind == self.name, PooledResource.instance_id.is_not(None)
                )
            )
            return [
                InventoryItem(
                    resource_id=str(row.id),
                    name=row.label,
                    instance_id=row.instance_id,
                    created_at=row.assigned_at or datetime.now(UTC),
                )
                for row in rows
            ]
