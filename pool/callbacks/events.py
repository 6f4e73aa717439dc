"""The instance event log (`instance_events`) and the per-instance send rate limit it carries.

The rate limit counts an instance's send events in the last window, under a per-instance advisory
lock, in the pool database: every pool replica sees the same count, and a send is recorded before it
is forwarded, so two concurrent sends cannot both slip under the limit."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.models import InstanceEvent
from shared.errors import AppError

Sessionmaker = async_sessionmaker[AsyncSession]
SEND_KINDS = ("proxy.email.send", "proxy.sms.send")


class TooManyRequests(AppError):
    status_code = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)}


def _send_lock(instance_id: str) -> int:
    digest = hashlib.sha256(f"warmpool.proxy_send:{instance_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def record(
    sessionmaker: Sessionmaker, *, instance_id: str, kind: str, actor: str, summary: dict[str, Any]
) -> int:
    async with sessionmaker.begin() as session:
        event = InstanceEvent(instance_id=instance_id, kind=kind, actor=actor, summary=summary)
        session.add(event)
        await session.flush()
        return event.id


async def reserve_send(
    sessionmaker: Sessionmaker,
    *,
    instance_id: str,
    kind: str,
    summary: dict[str, Any],
    limit: int,
    window: float,
) -> int:
    """Record a send about to be forwarded, or refuse it (429): `limit` sends in `window` s already."""
    async with sessionmaker.begin() as session:
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _send_lock(instance_id)})
        since = func.now() - func.make_interval(0, 0, 0, 0, 0, 0, window)
        recent = (
            await session.execute(
                select(func.count(), func.min(InstanceEvent.at), func.now()).where(
                    InstanceEvent.instance_id == instance_id,
                    InstanceEvent.kind.in_(SEND_KINDS),
                    InstanceEvent.at > since,
                )
            )
        ).one()
        count, oldest, now = recent
        if count >= limit:
            wait = window - (now - oldest).total_seconds() if oldest is not None else window
            raise TooManyRequests(
                f"this instance sent {count} messages in the last {window:g} s (the limit); retry later",
                retry_after=max(1, math.ceil(wait)),
            )
        event = InstanceEvent(instance_id=instance_id, kind=kind, actor="instance", summary=summary)
        session.add(event)
        await session.flush()
        return event.id


async def finish(sessionmaker: Sessionmaker, event_id: int, outcome: dict[str, Any]) -> None:
    async with sessionmaker.begin() as session:
        event = await session.get(InstanceEvent, event_id)
        if event is not None:
            event.summary = {**event.summary, **outcome}


async def list_events(session: AsyncSession, *, instance_id: str, limit: int) -> list[InstanceEvent]:
    rows = await session.scalars(
        select(InstanceEvent)
        .where(InstanceEvent.instance_id == instance_id)
        .order_by(InstanceEvent.at.desc(), InstanceEvent.id.desc())
        .limit(limit)
    )
    return list(rows)


async def prune(sessionmaker: Sessionmaker, *, retention_hours: float) -> int:
    """Delete events older than the retention (run by the tick leader)."""
    async with sessionmaker.begin() as session:
        result = await session.execute(
            delete(InstanceEvent).where(
                InstanceEvent.at < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, retention_hours * 3600)
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
