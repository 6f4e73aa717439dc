"""The claim's statements that touch an idle instance, on the pool's one plain asyncpg pool.

This module owns that asyncpg pool (`ClaimsDb`), and the one definition of which instance a claim
gets (`_pick_idle`): an idle one of the claim's template, its newest version first (DESIGN.md §11:
after a new version, old idle ones serve only once the new ones are gone), oldest first within it,
that no other claim holds, locked with SKIP LOCKED so concurrent claims on any replica take
different rows instead of waiting on, or double-taking, the same one. The partial index
`ix_instances_idle_pick` yields it in that order without sorting every idle row (an `, id`
tie-break once cost 1.4 ms of PostgreSQL CPU per claim at 1,000 idle).

Why not the app's SQLAlchemy engine: a checkout there pings (BEGIN; SELECT; ROLLBACK) and every
transaction adds BEGIN and COMMIT, so the old reserve + mark-claimed cost 15 round trips and
~3 ms of CPU per claim through the ORM. Here a claim costs two statements, each atomic on its own,
so nothing is held open between them, and a dropped connection is noticed by asyncpg itself (the
pool replaces closed connections on acquire).

No barging (DESIGN.md §10): every statement here that picks an idle instance for a claim that
did not come through the queue picks only while no claim of its template is queued, in the same
statement; an instance that becomes idle while claims wait goes to the queue's head
(`pool.claims.queue_db.DISPATCH`). The idle claim still costs the same two statements.

The reads and writes that decide what a duplicate or an abandoned claim means stay on the ORM
session in `repository.py`: they share transactions with the rest of the app, and are not hot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from pool.claims.held import Held, held_here, holding
from pool.claims.schemas import ClaimCreate
from pool.templates.schemas import DEFAULT_TEMPLATE_ID
from shared.db import libpq_url

# A claim that names no template is served from this one (DESIGN.md §11).
DEFAULT_TEMPLATE = DEFAULT_TEMPLATE_ID


def no_barging(template_param: str) -> str:
    """The condition under which a claim outside the queue may take an idle instance."""
    queued = f"SELECT 1 FROM claims q WHERE q.status = 'queued' AND q.template = {template_param}"
    return f" AND NOT EXISTS ({queued})"


# In every statement that picks, $1 is the claim and $2 the instance ids it must not get (those
# it already tried). The caller marks the picked row `claiming` in the same statement, and only
# if it is still idle (the lock makes that certain; the condition says so).
def _pick_idle(template: str, condition: str = "") -> str:
    return f"""
    SELECT id FROM instances
     WHERE status = 'idle' AND template_id = {template} AND NOT (id = ANY($2::text[])){condition}
     ORDER BY template_version DESC, created_at
     LIMIT 1
     FOR UPDATE SKIP LOCKED
"""


MARK_CLAIMING = "SET status = 'claiming', status_changed_at = now(), updated_at = now()"

# The common claim in ONE statement: pick, register the claim already attached to the instance,
# and mark it `claiming`. The claim is inserted only when an instance was picked, and the instance
# is taken only when the claim was inserted (ON CONFLICT: an Idempotency-Key of the same caller, or
# an active joinUrl, that already has a claim; a concurrent insert of the same key waits for the
# other to commit). `picked` NULL (no idle instance) or no `taken` row (a duplicate) sends the
# caller to `register`, which decides between waiting, deduplicating and 503. `picked` is
# MATERIALIZED so the row the claim is attached to is the row that was locked, evaluated once.
RESERVE = f"""
WITH picked AS MATERIALIZED ({_pick_idle("$7", no_barging("$7"))}), inserted AS (
    INSERT INTO claims (id, caller, idempotency_key, request_hash, join_url, status, instance_id, source,
                        template, owner_id)
    SELECT $1, $6, $3, $4, $5, 'pending', picked.id, $8, $7, $9 FROM picked
    ON CONFLICT DO NOTHING
    RETURNING instance_id
), taken AS (
    UPDATE instances {MARK_CLAIMING}
     WHERE id = (SELECT instance_id FROM inserted) AND status = 'idle'
    RETURNING id, url, gateway_token_enc
)
SELECT (SELECT id FROM picked) AS picked,
       (SELECT count(*) FROM inserted) AS inserted,
       taken.id, taken.url, taken.gateway_token_enc
  FROM (SELECT 1) AS one LEFT JOIN taken ON true
"""

# Every write that moves a claim forward first locks it while it is still `pending` (claim, then
# instance: the kill's `release_claims_of` goes in the same order), so nothing attaches an
# instance to, or records success on, a claim that a kill or the tick has ended meanwhile.
LOCK_PENDING = "SELECT id, template FROM claims WHERE id = $1 AND status = 'pending' FOR UPDATE"
CLAIM_TEMPLATE = "(SELECT template FROM claim)"


# Give a pending claim an instance of its template: pick, mark `claiming`, attach.
def _take(condition: str) -> str:
    return f"""
WITH claim AS MATERIALIZED ({LOCK_PENDING}),
picked AS MATERIALIZED ({_pick_idle(CLAIM_TEMPLATE, condition)}), taken AS (
    UPDATE instances {MARK_CLAIMING}
     WHERE id = (SELECT id FROM picked) AND status = 'idle'
    RETURNING id, url, gateway_token_enc
), attached AS (
    UPDATE claims SET instance_id = taken.id, updated_at = now()
      FROM taken WHERE claims.id = (SELECT id FROM claim)
)
SELECT id, url, gateway_token_enc FROM taken
"""


# The claim's template's queue must be empty.
TAKE = _take(no_barging(CLAIM_TEMPLATE))
# A claim the queue assigned whose first instance failed was served at its turn, ahead of everyone
# still queued: its second instance is no barging.
TAKE_AS_HEAD = _take("")

# A concurrent insert of the same key blocks here until its transaction ends, so a duplicate
# either sees the first claim or becomes the first claim itself.
INSERT_CLAIM = """
INSERT INTO claims (id, caller, idempotency_key, request_hash, join_url, status, source, template, owner_id)
VALUES ($1, $5, $2, $3, $4, 'pending', $6, $7, $8)
ON CONFLICT DO NOTHING
RETURNING id
"""

# The instance write is conditional on `claiming` (a kill that raced the claim wins) and on the
# claim still pending on this instance; the claim is marked succeeded only if that write happened.
MARK_CLAIMED = """
WITH claim AS MATERIALIZED (
    SELECT id FROM claims WHERE id = $11 AND status = 'pending' AND instance_id = $1 FOR UPDATE
), instance AS (
    UPDATE instances
       SET status = $2, agent_name = $3, instructions = $4, join_url = $5, profile_image = $6,
           metadata = $7::jsonb, owner_id = $8, conversation_id = $9, invite_url = $10,
           claimed_at = now(), status_changed_at = now(), updated_at = now(), last_error = NULL
     WHERE id = $1 AND status = 'claiming' AND EXISTS (SELECT 1 FROM claim)
    RETURNING id
)
UPDATE claims
   SET status = 'succeeded', response = $12::jsonb, updated_at = now()
 WHERE id = (SELECT id FROM claim) AND EXISTS (SELECT 1 FROM instance)
RETURNING id
"""

# The claim's own failure, recorded once: if a kill or the tick ended it first, theirs stands.
FAIL = """
UPDATE claims SET status = 'failed', response = $2::jsonb, updated_at = now()
 WHERE id = $1 AND status = 'pending'
RETURNING id
"""

DELETE_PENDING = "DELETE FROM claims WHERE id = $1 AND status = 'pending'"


@dataclass(frozen=True)
class Picked:
    id: str
    url: str | None
    gateway_token_enc: str | None


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


class ClaimsDb:
    """A small asyncpg pool, opened on first use (so building the app state stays synchronous)."""

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self._dsn = libpq_url(url)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        # At most `max_size` statements wait on the pool itself. Its queue lets a newcomer take a
        # connection just handed to a waiter, which then re-queues at the back: under a burst some
        # claims starved (overhead p99 ~1 s against p50 ~170 ms at concurrency 100). asyncio's
        # Semaphore is first come, first served, so claims are served in arrival order.
        self._slots = asyncio.Semaphore(max_size)

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
                        self._dsn, min_size=0, max_size=self._max_size, reset=_no_reset
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

    async def reserve(
        self,
        *,
        claim_id: str,
        caller: str,
        key: str | None,
        digest: str,
        join_url: str | None,
        source: str | None = None,
        template: str = DEFAULT_TEMPLATE,
        owner_id: str | None = None,
    ) -> Picked | None:
        """The instance reserved for this new claim, or None: no idle instance of its template, or
        a duplicate."""
        pool = await self._target()
        async with self._slot():
            row = await pool.fetchrow(
                RESERVE, claim_id, [], key, digest, join_url, caller, template, source, owner_id
            )
        assert row is not None  # the outer SELECT always yields one row
        instance = _picked(row)
        if instance is None and row["inserted"]:
            # Inserted but not taken cannot happen while the picked row is locked; never leave a
            # pending claim without its instance behind if it somehow does.
            await self.delete_pending(claim_id)
        return instance

    async def register(
        self,
        *,
        claim_id: str,
        caller: str,
        key: str | None,
        digest: str,
        join_url: str | None,
        source: str | None = None,
        template: str = DEFAULT_TEMPLATE,
        owner_id: str | None = None,
    ) -> Picked | Duplicate | None:
        """`reserve`'s slower twin, which tells why nothing was reserved: the claim is registered
        and given an instance in one transaction; DUPLICATE when the key or the joinUrl already
        has a claim, None (nothing kept) when no instance is idle."""
        pool = await self._target()
        async with self._slot(), pool.acquire() as connection:
            try:
                async with connection.transaction():
                    inserted = await connection.fetchval(
                        INSERT_CLAIM, claim_id, key, digest, join_url, caller, source, template, owner_id
                    )
                    if inserted is None:
                        return DUPLICATE
                    picked = _picked(await connection.fetchrow(TAKE, claim_id, []))
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

    async def mark_claimed(
        self,
        *,
        claim_id: str,
        instance_id: str,
        new_status: str,
        body: ClaimCreate,
        conversation_id: str,
        invite_url: str,
        response: dict[str, Any],
    ) -> bool:
        pool = await self._target()
        async with self._slot():
            row = await pool.fetchrow(
                MARK_CLAIMED,
                instance_id,
                new_status,
                body.agent_name,
                body.instructions,
                body.join_url,
                body.profile_image,
                json.dumps(body.metadata) if body.metadata is not None else None,
                body.owner_id,
                conversation_id,
                invite_url,
                claim_id,
                json.dumps(response),
            )
        return row is not None
