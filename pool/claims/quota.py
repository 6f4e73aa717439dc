"""The per-owner quota (DESIGN.md §11): an owner (a claim's `ownerId`) may have at most
`POOL_OWNER_MAX_AGENTS` live agents across templates, and at most a template version's
`owner_agent_limit` of that template; a claim past either answers 429 and nothing is provisioned.

Live, as `pool.claims.owners` lists them: agents `claimed` or `pending_acceptance` for the owner
(`instances.owner_id`), plus the owner's claims `queued` or `pending` (`claims.owner_id`; a
`claiming` instance is held by a pending claim, so it is counted once).

Atomic under concurrency: an owner's claims are serialised by a transaction-level advisory lock on
the owner (`pool.locks.owner_quota`); under it one statement counts, and the claim's own insert
(the pick, the queue or the slow path: whatever `pool.claims.db`/`queue_db` run in the block) runs
in the same transaction (`ClaimsDb.held_transaction`), so the next claim of the owner counts it.
The count is its own statement after the lock, never in the lock's: a statement sees only what was
committed when it began. Claims without `ownerId` skip all of it: the usual one statement.

A request that repeats an existing claim (its Idempotency-Key, or a joinUrl a claim holds) is not
counted against the limit: it gets that claim's outcome, as without a quota.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from pool import locks
from pool.claims.owners import LIVE_BOUND
from pool.claims.schemas import ClaimCreate
from pool.deps import PoolState
from pool.models import HOLDS_JOIN_URL
from shared.errors import AppError, Unavailable
from shared.logging import get_logger

log = get_logger("pool.claims.quota")

# Claims of one owner wait for each other's registration (a statement or two): this bounds the wait
# under a burst of that owner's claims, past which the claim answers 503 (retry).
LOCK_TIMEOUT_SECONDS = 10
_BOUND_SQL = ", ".join(f"'{status}'" for status in LIVE_BOUND)

COUNT = f"""
WITH agents AS (
    SELECT template_id FROM instances WHERE owner_id = $1 AND status IN ({_BOUND_SQL})
), in_flight AS (
    SELECT template FROM claims WHERE owner_id = $1 AND status IN ('queued', 'pending')
)
SELECT (SELECT count(*) FROM agents) + (SELECT count(*) FROM in_flight) AS live,
       (SELECT count(*) FROM agents WHERE template_id = $2)
         + (SELECT count(*) FROM in_flight WHERE template = $2) AS of_template,
       (SELECT v.owner_agent_limit FROM templates t
          JOIN template_versions v ON v.template_id = t.id AND v.version = t.current_version
         WHERE t.id = $2) AS template_limit,
       EXISTS (SELECT 1 FROM claims
                WHERE ($3::text IS NOT NULL AND caller = $4 AND idempotency_key = $3)
                   OR ($5::text IS NOT NULL AND join_url = $5 AND {HOLDS_JOIN_URL})) AS repeat
"""


class QuotaExceeded(AppError):
    status_code = 429


@asynccontextmanager
async def held(
    pool: PoolState, body: ClaimCreate, template: str, *, caller: str, key: str | None
) -> AsyncIterator[None]:
    """Wrap the claim's registration: for an owner's claim, take the owner's lock, refuse the claim
    past a limit (429), and keep the block's statements in that transaction; otherwise nothing."""
    if body.owner_id is None:
        yield
        return
    owner = body.owner_id
    try:
        async with pool["claims_db"].held_transaction() as connection:
            # One simple-protocol round trip; the key is an integer we computed.
            await connection.execute(
                f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_SECONDS}s'; "
                f"SELECT pg_advisory_xact_lock({locks.owner_quota(owner)})"
            )
            counted = await connection.fetchrow(COUNT, owner, template, key, caller, body.join_url)
            if not counted["repeat"]:
                _check(pool, owner, template, counted)
            yield
    except asyncpg.LockNotAvailableError:
        raise Unavailable(f"too many claims of owner {owner} at once; retry shortly", retry_after=1) from None


def _check(pool: PoolState, owner: str, template: str, counted: asyncpg.Record) -> None:
    limit = pool["settings"].owner_max_agents
    if limit and counted["live"] >= limit:
        log.info("claim.quota_exceeded", owner_id=owner, live=counted["live"], limit=limit)
        raise QuotaExceeded(
            f"owner {owner} already has {counted['live']} live agents (claimed or being claimed), "
            f"the most this deployment allows one owner ({limit}); end one before claiming another"
        )
    template_limit = counted["template_limit"]
    if template_limit is not None and counted["of_template"] >= template_limit:
        log.info("claim.quota_exceeded", owner_id=owner, template=template, live=counted["of_template"])
        raise QuotaExceeded(
            f"owner {owner} already has {counted['of_template']} live agents of template {template}, "
            f"the most it allows one owner ({template_limit}); end one before claiming another"
        )
