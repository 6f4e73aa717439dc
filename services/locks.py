"""Every PostgreSQL advisory lock services takes, in one place so no two keys can collide.

Keys are fixed numbers: changing one means old and new replicas stop excluding each other during a
rolling deploy, so add a key, never renumber one. Single-bigint keys and (int, int) keys are
separate spaces in PostgreSQL; the (int, int) ones all use a namespace below as their first half.

The per-instance lock (`hold_instance`) serialises every tool operation on one instance against
its destroy (DESIGN §14.1): provision, destroy of one tool, rollback of a failed create and
destroy of the instance each hold it from before they read the ledger until their last ledger
write. It is session-level, held across the operation's committed steps (each step commits, so a
crash leaves a row the next caller or the sweep finishes), on a connection of its own that the
steps also run on: a holder never needs a second connection, and waiters hold none (they try,
then pause). A crashed holder's connection closes and PostgreSQL frees the lock, so a ledger row
left `creating` whose instance lock is free belongs to nobody: no clock decides it.
`create_instance` and the sweep's platform-orphan destroy take the same key for one transaction
(`instance_xact_lock`), so they wait for a holder too. Never take it while holding it on another
connection in the same task: the second request would wait for the first forever.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from shared.errors import Conflict
from shared.logging import get_logger
from shared.retry import RetryPolicy

log = get_logger("services.locks")

# Session-level, held by the one replica sweeping (services.sweep.service).
SWEEP_KEY = 0x5EE9_0001
# (namespace, hashtext(instance id)): the per-instance lock.
INSTANCE_NAMESPACE = 0x5EE9_0002
# (namespace, hashtext(kind:instance id)): one pooled assignment per instance and kind at a time.
POOLED_NAMESPACE = 0x5EE9_0003
# Transaction-level: one placement at a time, so counting a platform's rows and recording the
# choice on the row are one step across workers and replicas (services.platforms.placement).
PLACEMENT_KEY = 0x5EE9_0004
# Transaction-level: Telnyx search + order serialised fleet-wide (services.tools.telnyx).
TELNYX_ORDER_KEY = 0x7E1A_0D3E

# Waiting for an instance's lock: try about every 50 ms at first, then up to every second, for at
# most 30 s (a provision of a tool takes seconds; the slowest, a Telnyx order, is bounded by its
# own timeout), then answer 409 so the caller retries later.
WAIT_FOR_INSTANCE = RetryPolicy(
    "instance-lock", attempts=None, backoff_seconds=0.05, max_backoff_seconds=1.0, deadline_seconds=30.0
)

Sessionmaker = async_sessionmaker[AsyncSession]


class InstanceBusy(Conflict):
    """Another operation holds the instance's lock past the wait."""


def _instance_key(instance_id: str) -> tuple[int, ColumnElement[int]]:
    return INSTANCE_NAMESPACE, func.hashtext(instance_id)


def instance_xact_lock(instance_id: str) -> ColumnElement[Any]:
    """Wait for the instance's lock and hold it until the transaction ends."""
    return func.pg_advisory_xact_lock(*_instance_key(instance_id))


def pooled_xact_lock(kind: str, instance_id: str) -> ColumnElement[Any]:
    return func.pg_advisory_xact_lock(POOLED_NAMESPACE, func.hashtext(f"{kind}:{instance_id}"))


async def _discard(conn: AsyncConnection) -> None:
    """Drop the connection instead of pooling it: its server session ends and frees any lock."""
    with contextlib.suppress(Exception):
        await conn.invalidate()
    with contextlib.suppress(Exception):
        await conn.close()


async def _try_take(engine: AsyncEngine, instance_id: str) -> AsyncConnection | None:
    conn = await engine.connect()
    try:
        got = await conn.scalar(select(func.pg_try_advisory_lock(*_instance_key(instance_id))))
        await conn.commit()
    except BaseException:
        await _discard(conn)  # the lock may have been granted before the failure
        raise
    if got:
        return conn
    await conn.close()
    return None


async def _release(conn: AsyncConnection, instance_id: str) -> None:
    released = False
    try:
        await conn.rollback()
        released = bool(await conn.scalar(select(func.pg_advisory_unlock(*_instance_key(instance_id)))))
        await conn.commit()
    finally:
        if released:
            await conn.close()
        else:
            log.warning("instance_lock.release_failed", instance_id=instance_id)
            await _discard(conn)


class _Busy(Exception):
    pass


@contextlib.asynccontextmanager
async def hold_instance(
    sessionmaker: Sessionmaker, instance_id: str, *, wait: RetryPolicy | None = WAIT_FOR_INSTANCE
) -> AsyncIterator[Sessionmaker]:
    """Hold the instance's lock for the block; yields a sessionmaker on the lock's connection, for
    the block's own steps. `wait=None`: try once. Raises InstanceBusy when it stays taken."""
    engine = sessionmaker.kw["bind"]

    async def attempt() -> AsyncConnection:
        conn = await _try_take(engine, instance_id)
        if conn is None:
            raise _Busy
        return conn

    try:
        if wait is None:
            conn = await attempt()
        else:
            conn = await wait.call(attempt, retry_on=lambda error: isinstance(error, _Busy))
    except _Busy:
        raise InstanceBusy(
            f"instance {instance_id} is busy with another tool operation or its destroy; try again"
        ) from None
    try:
        yield async_sessionmaker(bind=conn, expire_on_commit=False)
    finally:
        await _release(conn, instance_id)
