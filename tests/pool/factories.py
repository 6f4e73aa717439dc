"""Plain factories for pool rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pool.models import Instance
from shared.auth import SecretBox
from shared.ids import new_instance_id

ENCRYPTION_KEY = "test-pool-encryption-key"


async def make_instance(
    session: AsyncSession, *, token: str | None = None, status: str = "idle", **overrides: Any
) -> Instance:
    instance_id = overrides.pop("id", None) or new_instance_id()
    values: dict[str, Any] = {
        "id": instance_id,
        "name": f"agent-{instance_id}",
        "url": f"http://127.0.0.1:9/i/{instance_id}",
        "status": status,
        "gateway_token_enc": SecretBox(ENCRYPTION_KEY).encrypt(token) if token else None,
    }
    values.update(overrides)
    instance = Instance(**values)
    session.add(instance)
    await session.flush()
    return instance


async def add_fleet_instances(
    sessionmaker: Any,
    fleet: Any,
    count: int,
    *,
    status: str = "idle",
    row: dict[str, Any] | None = None,
    **knobs: Any,
) -> list[str]:
    """`count` instances served by the fake fleet, with pool rows in `status` (and `row`'s
    columns), oldest first."""
    ids: list[str] = []
    async with sessionmaker() as session, session.begin():
        for _ in range(count):
            instance_id = new_instance_id()
            agent = fleet.add(instance_id, **knobs)
            await make_instance(
                session,
                id=instance_id,
                token=agent.token,
                status=status,
                url=fleet.url(instance_id),
                **(row or {}),
            )
            ids.append(instance_id)
    return ids
