"""A transaction one task holds on the claims' asyncpg pool (`ClaimsDb.held_transaction`): while
it is held, every statement `pool.claims.db` and `queue_db` run for that task goes to its connection,
inside it. Only that task: one it starts copies its context, and must not share the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from typing import Any

import asyncpg

# The holding task and its connection: the task is checked, since a context is inherited.
_held: ContextVar[tuple[asyncio.Task[Any] | None, asyncpg.Connection] | None] = ContextVar(
    "claims_held_transaction", default=None
)


def held_here() -> asyncpg.Connection | None:
    held = _held.get()
    return held[1] if held is not None and held[0] is asyncio.current_task() else None


class Held:
    """The held connection standing in for the pool (the calls `ClaimsDb` makes of it)."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetchrow(self, *args: Any, **kwargs: Any) -> Any:
        return await self._connection.fetchrow(*args, **kwargs)

    async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
        return await self._connection.fetchval(*args, **kwargs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._connection.execute(*args, **kwargs)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        yield self._connection


@contextmanager
def holding(connection: asyncpg.Connection) -> Iterator[None]:
    """The current task's statements go to `connection` until the block ends."""
    token = _held.set((asyncio.current_task(), connection))
    try:
        yield
    finally:
        _held.reset(token)
