"""The claim's SQL on the ORM session. Each function runs inside a transaction its caller owns.

What picks and takes an idle instance, and records a claim's own outcome, is in `db.py` (asyncpg,
one statement each); here is what reads a duplicate's first claim, ends claims from outside (a
kill, the tick), settles a `claiming` or `pending_acceptance` instance and prunes old records.
Every write to a claim is conditional on the status it moves from (a claim ends once), and every
write to an instance on the status the claim put there, so a kill or a tick that raced the claim
wins and the claim notices.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from pool.models import HOLDS_JOIN_URL
from pool.status import HOLDS_JOIN
from shared.errors import error_body

KILLED = "the claim ended: its instance was removed while it was being provisioned"
_HOLDS_JOIN_SQL = ", ".join(f"'{status}'" for status in sorted(HOLDS_JOIN))


def recorded_kind(response: dict[str, Any]) -> str:
    """The kind of a recorded failure; records from before `kind` carried it in `error`."""
    return str(response.get("kind", response.get("error", "UpstreamError")))


def failure(detail: str) -> dict[str, Any]:
    """A failed claim's recorded outcome: the 502 body every retry of it gets (its `detail` is
    what a replay reads; records from before the readable `error` carried the class there)."""
    return error_body("UpstreamError", detail)


@dataclass(frozen=True)
class ExistingClaim:
    id: str
    caller: str
    idempotency_key: str | None
    request_hash: str
    join_url: str | None
    instance_id: str | None
    status: str
    response: dict[str, Any] | None
    instance_status: str | None


@dataclass(frozen=True)
class Claiming:
    """An instance left `claiming` with no pending claim to own it."""

    id: str
    url: str | None
    gateway_token_enc: str | None


async def find_existing(
    session: AsyncSession, *, caller: str, key: str | None, join_url: str | None
) -> ExistingClaim | None:
    """The claim this one duplicates: the caller's own Idempotency-Key first (whatever its
    status), else the claim holding the joinUrl."""
    if key is not None:
        found = await _select_claim(
            session, "c.caller = :caller AND c.idempotency_key = :key", {"caller": caller, "key": key}
        )
        if found is not None:
            return found
    if join_url is not None:
        holding = f"SELECT id FROM claims WHERE join_url = :join_url AND {HOLDS_JOIN_URL}"
        return await _select_claim(session, f"c.id = ({holding})", {"join_url": join_url})
    return None


async def get_claim(session: AsyncSession, claim_id: str) -> ExistingClaim | None:
    return await _select_claim(session, "c.id = :id", {"id": claim_id})


async def _select_claim(session: AsyncSession, where: str, params: dict[str, Any]) -> ExistingClaim | None:
    row = (
        await session.execute(
            text(
                f"""
                SELECT c.id, c.caller, c.idempotency_key, c.request_hash, c.join_url, c.instance_id,
                       c.status, c.response, i.status AS instance_status
                  FROM claims c LEFT JOIN instances i ON i.id = c.instance_id
                 WHERE {where}
                """
            ),
            params,
        )
    ).first()
    return ExistingClaim(**row._mapping) if row is not None else None


async def release_join(session: AsyncSession, claim_id: str) -> None:
    """A succeeded claim's agent no longer holds its joinUrl: the join may happen again. Its
    recorded answer is unchanged (a retry of its key still gets it)."""
    await session.execute(
        text(
            "UPDATE claims SET join_released_at = now(), updated_at = now() "
            "WHERE id = :id AND status = 'succeeded' AND join_released_at IS NULL"
        ),
        {"id": claim_id},
    )


async def release_claims_of(session: AsyncSession, instance_id: str) -> None:
    """The instance is gone or lost its agent: a claim still provisioning on it fails (the
    outcome its retries get), a succeeded one lets its joinUrl go. Call it before writing the
    instance: claims are locked before instances everywhere (pool.claims.db), so no deadlock."""
    await session.execute(
        text(
            "UPDATE claims SET status = 'failed', response = CAST(:outcome AS jsonb), updated_at = now() "
            "WHERE instance_id = :iid AND status = 'pending'"
        ),
        {"iid": instance_id, "outcome": json.dumps(failure(KILLED))},
    )
    await session.execute(
        text(
            "UPDATE claims SET join_released_at = now(), updated_at = now() "
            "WHERE instance_id = :iid AND status = 'succeeded' AND join_released_at IS NULL"
        ),
        {"iid": instance_id},
    )


async def set_status_from_claiming(
    session: AsyncSession, *, instance_id: str, status: str, error: str, claim_id: str | None
) -> bool:
    """Give back (idle) or condemn (dead) a `claiming` instance, unless a pending claim other than
    `claim_id` holds it (the tick passes None: it recovers only what no pending claim owns)."""
    result = await session.execute(
        text(
            """
            UPDATE instances
               SET status = :status, last_error = :error, status_changed_at = now(), updated_at = now()
             WHERE id = :id AND status = 'claiming'
               AND NOT EXISTS (SELECT 1 FROM claims c
                                WHERE c.instance_id = :id AND c.status = 'pending'
                                  AND c.id IS DISTINCT FROM CAST(:claim_id AS text))
            """
        ),
        {"id": instance_id, "status": status, "error": error[:500], "claim_id": claim_id},
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def set_status_from(
    session: AsyncSession, *, instance_id: str, expected: str, status: str, error: str | None
) -> bool:
    result = await session.execute(
        text(
            """
            UPDATE instances
               SET status = :status, last_error = :error, status_changed_at = now(), updated_at = now()
             WHERE id = :id AND status = :expected
            """
        ),
        {"id": instance_id, "status": status, "expected": expected, "error": error[:500] if error else None},
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


# Pending (provisioning) longer than any live claim can be; a queued claim's age counts from its
# assignment. (created_at first, so the partial index on pending claims finds them.)
_STALE = """status = 'pending' AND created_at < now() - make_interval(secs => :age)
            AND coalesce(assigned_at, created_at) < now() - make_interval(secs => :age)"""


async def requeue_stale_claims(session: AsyncSession, *, older_than_seconds: float) -> list[tuple[str, str]]:
    """Stale pending claims that came from the queue and whose deadline has not passed go back to
    their place in it (the replica provisioning them died): (claim, the instance it held)."""
    rows = await session.execute(
        text(
            f"""
            UPDATE claims c SET status = 'queued', instance_id = NULL, assigned_at = NULL, updated_at = now()
              FROM (SELECT id, instance_id FROM claims
                     WHERE {_STALE} AND queued_at IS NOT NULL AND deadline_at > now()
                     FOR UPDATE) AS stale
             WHERE c.id = stale.id
            RETURNING c.id, stale.instance_id
            """
        ),
        {"age": older_than_seconds},
    )
    return [(row[0], row[1]) for row in rows.all()]


async def end_stale_claims(
    session: AsyncSession, *, older_than_seconds: float
) -> list[tuple[str, str | None]]:
    """Pending claims older than any live claim can be lost their claimant (its pool died
    mid-provision): they fail, with an outcome their retries get. Their `claiming` instances are
    then no pending claim's, for `claiming_without_claim` to find."""
    outcome = failure(
        f"the claim ended: no outcome within {older_than_seconds:.0f} s (abandoned mid-provision)"
    )
    rows = await session.execute(
        text(
            f"""
            UPDATE claims SET status = 'failed', response = CAST(:outcome AS jsonb), updated_at = now()
             WHERE {_STALE}
            RETURNING id, instance_id
            """
        ),
        {"age": older_than_seconds, "outcome": json.dumps(outcome)},
    )
    return [(row[0], row[1]) for row in rows.all()]


async def claiming_without_claim(session: AsyncSession, *, limit: int) -> list[Claiming]:
    """`claiming` instances no pending claim holds: their claim ended (stale, killed) or their
    claimant lost them. Nothing else will ever move them (the tick plans nothing on `claiming`)."""
    rows = await session.execute(
        text(
            """
            SELECT i.id, i.url, i.gateway_token_enc FROM instances i
             WHERE i.status = 'claiming'
               AND NOT EXISTS (SELECT 1 FROM claims c WHERE c.instance_id = i.id AND c.status = 'pending')
             ORDER BY i.status_changed_at
             LIMIT :limit
            """
        ),
        {"limit": limit},
    )
    return [Claiming(row[0], row[1], row[2]) for row in rows.all()]


async def count_queued(session: AsyncSession) -> int:
    """Claims waiting in the queue: demand the tick creates for (pool.tick.plan.replenish_count)."""
    return int(await session.scalar(text("SELECT count(*) FROM claims WHERE status = 'queued'")) or 0)


async def queue_depths(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        text("SELECT template, count(*) FROM claims WHERE status = 'queued' GROUP BY template")
    )
    return {str(row[0]): int(row[1]) for row in rows.all()}


async def prune_claims(session: AsyncSession, *, older_than_hours: float, limit: int) -> int:
    """Delete up to `limit` ended claim records older than the retention. A succeeded claim whose
    agent still holds its joinUrl stays: it is what keeps a second agent out of that conversation."""
    result = await session.execute(
        text(
            f"""
            DELETE FROM claims WHERE id IN (
                SELECT c.id FROM claims c
                 WHERE c.created_at < now() - make_interval(secs => :hours * 3600)
                   AND c.status NOT IN ('queued', 'pending')
                   AND (c.status = 'failed' OR c.join_url IS NULL OR c.join_released_at IS NOT NULL
                        OR NOT EXISTS (SELECT 1 FROM instances i
                                        WHERE i.id = c.instance_id AND i.status IN ({_HOLDS_JOIN_SQL})))
                 ORDER BY c.created_at
                 LIMIT :limit
            )
            """
        ),
        {"hours": older_than_hours, "limit": limit},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
