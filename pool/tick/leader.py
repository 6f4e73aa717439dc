"""One leader per fleet: a session-level Postgres advisory lock held on a dedicated connection.

The lock lives exactly as long as that connection. If the leader's process dies or its
connection drops, PostgreSQL releases the lock, and the next replica to try (at most one
interval later) takes over. The connection is ours alone, never returned to a pool where
another request could inherit the lock.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from pool import locks
from shared.db import libpq_url
from shared.logging import get_logger

log = get_logger("pool.tick.leader")


class Leadership:
    def __init__(self, database_url: str, fleet: str, *, timeout: float = 5.0) -> None:
        self._dsn = libpq_url(database_url)
        self._key = locks.tick_leader(fleet)
        self._timeout = timeout
        self._conn: Any = None
        self.held = False
        # The tick and the prober both ask; one connection serves one query at a time.
        self._guard = asyncio.Lock()

    async def acquire(self) -> bool:
        """True when this process holds the lock now (checking that a held lock is still alive)."""
        async with self._guard:
            return await self._acquire()

    async def _acquire(self) -> bool:
        try:
            conn = await self._connection()
            if self.held:
                await conn.fetchval("SELECT 1", timeout=self._timeout)
                return True
            self.held = bool(
                await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._key, timeout=self._timeout)
            )
            if self.held:
                log.info("tick.leader.acquired", key=self._key)
            return self.held
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            if self.held:
                log.warning("tick.leader.lost", error=type(exc).__name__)
            await self._discard()
            return False

    async def release(self) -> None:
        async with self._guard:
            await self._release()

    async def _release(self) -> None:
        conn, held = self._conn, self.held
        self._conn, self.held = None, False
        if conn is None:
            return
        try:
            if held:
                await conn.fetchval("SELECT pg_advisory_unlock($1)", self._key, timeout=self._timeout)
        except Exception:  # noqa: BLE001 - closing the connection releases it anyway
            pass
        finally:
            await self._close(conn)

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self.held = False
            self._conn = await asyncpg.connect(self._dsn, timeout=self._timeout)
        return self._conn

    async def _discard(self) -> None:
        conn, self._conn, self.held = self._conn, None, False
        if conn is not None:
            await self._close(conn)

    @staticmethod
    async def _close(conn: Any) -> None:
        try:
            await conn.close(timeout=2)
        except Exception:  # noqa: BLE001
            conn.terminate()
