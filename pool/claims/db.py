"""The claim's statements that touch an idle instance, run on the pool's one plain asyncpg pool.

This module owns that asyncpg pool (`ClaimsDb`) and runs the statements of `statements.py` (which
instance a claim gets, and how each step is one atomic statement).

Why not the app's SQLAlchemy engine: a checkout there pings (BEGIN; SELECT; ROLLBACK) and every
transaction adds BEGIN and COMMIT, so the old reserve + mark-claimed cost 15 round trips and
~3 ms of CPU per claim through the ORM. Here a claim costs two statements, each atomic on its own,
so nothing is held open between them, and a dropped connection is noticed by asyncpg itself (the
pool replaces closed connections on acquire).

The reads and writes that decide what a duplicate or an abandoned claim means stay on the ORM
session in `repository.py`: they share transactions with the rest of the app, and are not hot.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from pool.claims import batches
from pool.claims.coalesce import Coalescer
from pool.claims.held import Held, held_here, holding
from pool.claims.records import Claimed, NewClaim, Picked
from pool.claims.statements import (
    DELETE_PENDING,
    FAIL,
    INSERT_CLAIM,
    MARK_CLAIMED,
    RESERVE,
    TAKE,
    TAKE_AS_HEAD,
)
from shared.db import libpq_url
from shared.errors import Unavailable


class Duplicate:
    """`register`'s answer when the key or the joinUrl already has a claim."""


DUPLICATE = Duplicate()


def _picked(row: asyncpg.Record | None) -> Picked | None:
    if row is None or row["id"] is None:
        return None
    return Picked(row["id"], row["url"], row["gateway_token_enc"])


async def _no_reset(connection: asyncpg.Connection) -> None:
    """asyncpg's default reset (UNLISTEN, RESET ALL, ...) is a round trip per release; these
    statements set no session state. An open transaction is still rolled back by asyncpg."""


class _Rollback(Exception):
    """Ends `register`'s transaction without keeping the claim it inserted."""


# Up to this many of each write run alone at once; more concurrent ones wait and go as one batch.
# Closed-loop callers (the benchmark's) that all wait for one batch come back together and stay in
# step, one wave whose last claim waits for the whole wave's HTTP work; a few alone keep spread-out
# arrivals spread, and only a burst (50 claims at once) batches. 2-5 measured alike (bench/findings.md).
ALONE_IN_FLIGHT = 3
# The batch statements are costly to plan (~0.4 ms of PostgreSQL each time, more than executing a
# batch of ten) and their plan does not depend on the arguments, so every statement on this pool
# is planned once per connection; the single-row ones cost the same either way (measured).
SESSION_SETTINGS = {"plan_cache_mode": "force_generic_plan"}
# A claim's write waits this long for its answer (one statement; a batch waits as one). Past it the
# claim answers 503 instead of hanging, with every claim batched behind it; whatever the statement
# did is then a claim left pending, which the tick's upkeep of stale claims ends (DESIGN.md §14).
STATEMENT_TIMEOUT_SECONDS = 10.0


class DatabaseSlow(Unavailable):
    """The database did not answer a claim's write within its bound."""

    def __init__(self) -> None:
        super().__init__("the database did not answer the claim in time; retry")


class ClaimsDb:
    """A small asyncpg pool, opened on first use (so building the app state stays synchronous)."""

    def __init__(
        self,
        url: str,
        *,
        max_size: int = 10,
        statement_timeout: float = STATEMENT_TIMEOUT_SECONDS,
        on_batch: Callable[[str, int], None] | None = None,
    ) -> None:
        self._dsn = libpq_url(url)
        self.statement_timeout = statement_timeout  # a claim's reserve, record and template read
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        # At most `max_size` statements wait on the pool itself. Its queue lets a newcomer take a
        # connection just handed to a waiter, which then re-queues at the back: under a burst some
        # claims starved (overhead p99 ~1 s against p50 ~170 ms at concurrency 100). asyncio's
        # Semaphore is first come, first served, so claims are served in arrival order.
        self._slots = asyncio.Semaphore(max_size)
        # Concurrent claims' two writes go as batches (pool.claims.coalesce says when and why). A
        # statement the database refused did nothing, so its batch's claims may retry alone.
        refused = (asyncpg.PostgresError,)
        self._reserves = Coalescer(
            self._reserve_alone,
            self._reserve_batch,
            alone_on=refused,
            in_flight=ALONE_IN_FLIGHT,
            on_batch=None if on_batch is None else functools.partial(on_batch, "reserve"),
        )
        self._records = Coalescer(
            self._mark_claimed_alone,
            self._mark_claimed_batch,
            alone_on=refused,
            in_flight=ALONE_IN_FLIGHT,
            on_batch=None if on_batch is None else functools.partial(on_batch, "claimed"),
        )

    async def _target(self) -> Any:
        """Where this task's statements run: the asyncpg pool, or the connection of the
        transaction it holds (`held_transaction`)."""
        held = held_here()
        return Held(held) if held is not None else await self._get()

    def _slot(self) -> contextlib.AbstractAsyncContextManager[Any]:
        # A task inside its held transaction already has its slot: asking for a second one could
        # wait forever on tasks that wait for its lock.
        return contextlib.nullcontext() if held_here() is not None else self._slots

    @asynccontextmanager
    async def held_transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One connection in one transaction, on which every statement of this module (and of
        `queue_db`) that the current task runs goes until the block ends: committed on success,
        rolled back on an exception. The per-owner quota (`pool.claims.quota`) takes its lock and
        counts in it, so the claim is inserted in the same transaction. Other tasks are unaffected."""
        async with self.connection() as connection, connection.transaction():
            with holding(connection):
                yield connection

    async def _get(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=self._max_size,
                        reset=_no_reset,
                        server_settings=SESSION_SETTINGS,
                    )
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        """One connection of this pool, for the queue's statements (`pool.claims.queue_db`)."""
        pool = await self._target()
        async with self._slot(), pool.acquire() as connection:
            yield connection

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def reserve(self, claim: NewClaim) -> Picked | None:
        """The instance reserved for this new claim, or None: no idle instance of its template, or
        a duplicate. Inside a held transaction it runs there, alone; else with whatever concurrent
        claims send meanwhile."""
        try:
            row = await (self._reserve_alone(claim) if held_here() is not None else self._reserves(claim))
        except TimeoutError as exc:
            raise DatabaseSlow from exc
        instance = _picked(row)
        if instance is None and row["inserted"]:
            # Inserted but not taken cannot happen while the picked row is locked; never leave a
            # pending claim without its instance behind if it somehow does.
            await self.delete_pending(claim.claim_id)
        return instance

    async def _reserve_alone(self, claim: NewClaim) -> asyncpg.Record:
        pool = await self._target()
        async with self._slot():
            row = await pool.fetchrow(
                RESERVE,
                claim.claim_id,
                [],
                claim.key,
                claim.digest,
                claim.join_url,
                claim.caller,
                claim.template,
                claim.source,
                claim.owner_id,
                timeout=self.statement_timeout,
            )
        assert row is not None  # the outer SELECT always yields one row
        return row

    async def _reserve_batch(self, claims: list[NewClaim]) -> list[asyncpg.Record]:
        pool = await self._get()
        async with self._slots:
            return await batches.reserve(pool, claims, timeout=self.statement_timeout)

    async def register(self, claim: NewClaim) -> Picked | Duplicate | None:
        """`reserve`'s slower twin, which tells why nothing was reserved: the claim is registered
        and given an instance in one transaction; DUPLICATE when the key or the joinUrl already
        has a claim, None (nothing kept) when no instance is idle."""
        pool = await self._target()
        async with self._slot(), pool.acquire() as connection:
            try:
                async with connection.transaction():
                    inserted = await connection.fetchval(
                        INSERT_CLAIM,
                        claim.claim_id,
                        claim.key,
                        claim.digest,
                        claim.join_url,
                        claim.caller,
                        claim.source,
                        claim.template,
                        claim.owner_id,
                    )
                    if inserted is None:
                        return DUPLICATE
                    picked = _picked(await connection.fetchrow(TAKE, claim.claim_id, []))
                    if picked is None:
                        raise _Rollback
                    return picked
            except _Rollback:
                return None

    async def take(self, *, claim_id: str, exclude: list[str], as_head: bool = False) -> Picked | None:
        """Another idle instance for a pending claim whose provision failed (not one in `exclude`);
        None when none is idle (or, unless `as_head`, others are queued) or the claim has ended."""
        pool = await self._target()
        async with self._slot():
            if as_head:
                return _picked(await pool.fetchrow(TAKE_AS_HEAD, claim_id, exclude))
            return _picked(await pool.fetchrow(TAKE, claim_id, exclude))

    async def delete_pending(self, claim_id: str) -> None:
        pool = await self._target()
        async with self._slot():
            await pool.execute(DELETE_PENDING, claim_id)

    async def fail(self, *, claim_id: str, outcome: dict[str, str]) -> bool:
        """Record the claim's failure; False when it had already ended (its outcome stands)."""
        pool = await self._target()
        async with self._slot():
            return await pool.fetchval(FAIL, claim_id, json.dumps(outcome)) is not None

    async def mark_claimed(self, claimed: Claimed) -> bool:
        """Record a provisioned claim's outcome; False when a kill or the tick ended it first."""
        try:
            if held_here() is not None:
                return await self._mark_claimed_alone(claimed)
            return await self._records(claimed)
        except TimeoutError as exc:
            raise DatabaseSlow from exc

    async def _mark_claimed_alone(self, claimed: Claimed) -> bool:
        pool = await self._target()
        async with self._slot():
            return (
                await pool.fetchrow(MARK_CLAIMED, *claimed.arguments(), timeout=self.statement_timeout)
                is not None
            )

    async def _mark_claimed_batch(self, records: list[Claimed]) -> list[bool]:
        pool = await self._get()
        async with self._slots:
            return await batches.mark_claimed(pool, records, timeout=self.statement_timeout)
