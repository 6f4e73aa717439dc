"""The claim queue's statements (DESIGN.md §10), on the claims' asyncpg pool (`pool.claims.db`).

A queued claim is a row of `claims` with status `queued`; its place is (priority desc, queue_seq)
within its template. Every move out of `queued` is one conditional write, so each happens once:
- `DISPATCH` → `pending` with an instance (under the queue's transaction-level advisory lock, so
  two replicas never pair the same head, and in the same statement the instance goes
  idle → claiming);
- `EXPIRE_DUE` / `EXPIRE` → `failed` past its deadline, `CANCEL` → `cancelled`: both free the
  Idempotency-Key (nothing was handed out, so a retry may queue again) and, by leaving the
  statuses that hold one, the joinUrl.
A provision that fails puts the claim back (`REQUEUE`) with its seq, so it keeps its place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from pool.claims.db import ClaimsDb
from pool.claims.eta import Supply, next_platform
from pool.claims.records import Picked
from shared.errors import error_body

IN_QUEUE = "queued"
ENDED = frozenset({"succeeded", "failed", "cancelled"})

# Everything before this one in its queue, when it would be inserted now, and what the ETA needs.
SUPPLY = """
SELECT (SELECT count(*) FROM claims WHERE status = 'queued' AND template = $1 AND priority >= $2) AS ahead,
       (SELECT count(*) FROM instances WHERE status = 'idle' AND template_id = $1) AS idle,
       (SELECT count(*) FROM instances) AS total,
       ARRAY(SELECT extract(epoch FROM now() - created_at)::float8 FROM instances
              WHERE status IN ('creating', 'starting') AND template_id = $1 ORDER BY id) AS in_flight,
       ARRAY(SELECT platform FROM instances
              WHERE status IN ('creating', 'starting') AND template_id = $1
              ORDER BY id) AS in_flight_platforms,
       ARRAY(SELECT extract(epoch FROM ready_at - created_at)::float8 FROM instances
              WHERE ready_at > now() - make_interval(secs => $3)
              ORDER BY ready_at DESC, id LIMIT $4) AS samples,
       ARRAY(SELECT platform FROM instances
              WHERE ready_at > now() - make_interval(secs => $3)
              ORDER BY ready_at DESC, id LIMIT $4) AS sample_platforms,
       (SELECT platforms FROM tick_state ORDER BY fleet LIMIT 1) AS platforms
"""

ENQUEUE = """
INSERT INTO claims (id, caller, idempotency_key, request_hash, join_url, status, template, priority,
                    request, deadline_at, queued_at, eta_seconds, source, owner_id)
VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8::jsonb, now() + make_interval(secs => $9), now(), $10,
        $8::jsonb->>'source', $8::jsonb->>'owner_id')
ON CONFLICT DO NOTHING
RETURNING id
"""

# The recorded outcome in the one error shape (shared.errors.error_body): a sentence, the kind, the detail.
_WAITED = "round(extract(epoch FROM deadline_at - queued_at))"
_TIMED_OUT = f"""jsonb_build_object(
    'error', 'No instance became free within ' || {_WAITED} || ' s in the queue; retry later.',
    'kind', 'Unavailable',
    'detail', 'no instance became free within ' || {_WAITED} || ' s in the queue; retry later')"""

EXPIRE_DUE = f"""
UPDATE claims SET status = 'failed', response = {_TIMED_OUT}, idempotency_key = NULL, updated_at = now()
 WHERE status = 'queued' AND template = $1 AND deadline_at <= now()
RETURNING id, extract(epoch FROM now() - queued_at)::float8 AS waited
"""

EXPIRE = f"""
UPDATE claims SET status = 'failed', response = {_TIMED_OUT}, idempotency_key = NULL, updated_at = now()
 WHERE id = $1 AND status = 'queued'
RETURNING extract(epoch FROM now() - queued_at)::float8 AS waited
"""

CANCEL = """
UPDATE claims SET status = 'cancelled', response = $3::jsonb, idempotency_key = NULL, updated_at = now()
 WHERE id = $1 AND caller = $2 AND status = 'queued'
RETURNING extract(epoch FROM now() - queued_at)::float8 AS waited
"""

# Heads (claims first, as everywhere) paired by rank with the template's idle instances, picked
# as a claim picks them (pool.claims.db: newest version, then oldest; SKIP LOCKED: a claim's own
# pick holds its row only for its statement).
# `at`: the moment of assignment, taken once under the lock, so rounds order as they happened and
# a round's claims share it.
DISPATCH = """
WITH at AS MATERIALIZED (SELECT clock_timestamp() AS at),
heads AS MATERIALIZED (
    SELECT id, row_number() OVER (ORDER BY priority DESC, queue_seq) AS n FROM (
        SELECT id, priority, queue_seq FROM claims
         WHERE status = 'queued' AND template = $1
         ORDER BY priority DESC, queue_seq LIMIT $2 FOR UPDATE) AS h
), idle AS MATERIALIZED (
    SELECT id, row_number() OVER (ORDER BY template_version DESC, created_at) AS n FROM (
        SELECT id, template_version, created_at FROM instances
         WHERE status = 'idle' AND template_id = $1
         ORDER BY template_version DESC, created_at LIMIT $2 FOR UPDATE SKIP LOCKED) AS i
), taken AS (
    UPDATE instances SET status = 'claiming', status_changed_at = now(), updated_at = now()
      FROM heads JOIN idle USING (n)
     WHERE instances.id = idle.id AND instances.status = 'idle'
    RETURNING instances.id, instances.url, instances.gateway_token_enc, heads.id AS claim_id
), assigned AS (
    UPDATE claims SET status = 'pending', instance_id = taken.id, assigned_at = at.at, updated_at = now()
      FROM taken, at WHERE claims.id = taken.claim_id AND claims.status = 'queued'
    RETURNING claims.id, claims.request, claims.eta_seconds,
              extract(epoch FROM at.at - claims.queued_at)::float8 AS waited
)
SELECT a.id AS claim_id, a.request, a.eta_seconds, a.waited, t.id, t.url, t.gateway_token_enc
  FROM assigned a JOIN taken t ON t.claim_id = a.id
 ORDER BY a.waited DESC
"""

# Back to its place (its seq is unchanged), once, while its deadline has not passed.
REQUEUE = """
UPDATE claims SET status = 'queued', instance_id = NULL, assigned_at = NULL, attempts = attempts + 1,
       updated_at = now()
 WHERE id = $1 AND status = 'pending' AND queued_at IS NOT NULL AND attempts < $2 AND deadline_at > now()
RETURNING id
"""

ANY_IN_QUEUE = "SELECT EXISTS (SELECT 1 FROM claims WHERE status = 'queued')"
# The templates whose queues have claims: each is dispatched on its own (pool.claims.dispatcher).
QUEUED_TEMPLATES = "SELECT DISTINCT template FROM claims WHERE status = 'queued' ORDER BY template"
STATES = "SELECT id, status FROM claims WHERE id = ANY($1::text[])"

TICKET = """
SELECT c.id, c.status, c.response, c.deadline_at, c.priority, c.template,
       CASE WHEN c.status = 'queued' THEN (
           SELECT count(*) FROM claims q
            WHERE q.status = 'queued' AND q.template = c.template
              AND (q.priority > c.priority OR (q.priority = c.priority AND q.queue_seq <= c.queue_seq))
       ) END AS position,
       c.status = 'queued' AND c.deadline_at <= now() AS overdue
  FROM claims c WHERE c.id = $1 AND c.caller = $2
"""


@dataclass(frozen=True)
class Assigned:
    claim_id: str
    request: dict[str, Any]
    eta_seconds: float | None
    waited: float
    instance: Picked


@dataclass(frozen=True)
class Dispatched:
    assigned: list[Assigned]
    expired: list[tuple[str, float]]


@dataclass(frozen=True)
class Record:
    id: str
    status: str
    response: dict[str, Any] | None
    position: int | None
    overdue: bool


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def supply(
    db: ClaimsDb,
    *,
    template: str,
    priority: int,
    window_seconds: float,
    samples: int,
    max_total: int,
    concurrency: int,
) -> tuple[int, Supply]:
    """How many claims are ahead of a new one of this priority, and the supply the ETA weighs."""
    async with db.connection() as connection:
        row = await connection.fetchrow(SUPPLY, template, priority, window_seconds, samples)
    assert row is not None
    return int(row["ahead"]), Supply(
        idle=int(row["idle"]),
        in_flight_ages=tuple(row["in_flight"]),
        refill_samples=tuple(row["samples"]),
        room=max(0, max_total - int(row["total"])),
        concurrency=concurrency,
        in_flight_platforms=tuple(row["in_flight_platforms"]),
        sample_platforms=tuple(row["sample_platforms"]),
        next_platform=next_platform(json.loads(row["platforms"]) if row["platforms"] else []),
    )


async def enqueue(
    db: ClaimsDb,
    *,
    claim_id: str,
    caller: str,
    key: str | None,
    digest: str,
    join_url: str | None,
    template: str,
    priority: int,
    request: dict[str, Any],
    timeout_seconds: float,
    eta_seconds: float | None,
) -> bool:
    """Insert the claim as queued; False: its Idempotency-Key or joinUrl already has a claim."""
    async with db.connection() as connection:
        inserted = await connection.fetchval(
            ENQUEUE,
            claim_id,
            caller,
            key,
            digest,
            join_url,
            template,
            priority,
            json.dumps(request),
            timeout_seconds,
            eta_seconds,
        )
    return inserted is not None


async def dispatch(db: ClaimsDb, *, template: str, lock_key: int, limit: int) -> Dispatched:
    """One atomic round: expire the heads past their deadline, then pair heads with idle instances."""
    async with db.connection() as connection, connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", lock_key)
        expired = await connection.fetch(EXPIRE_DUE, template)
        rows = await connection.fetch(DISPATCH, template, limit)
    return Dispatched(
        assigned=[
            Assigned(
                claim_id=row["claim_id"],
                request=_json(row["request"]),
                eta_seconds=row["eta_seconds"],
                waited=float(row["waited"]),
                instance=Picked(row["id"], row["url"], row["gateway_token_enc"]),
            )
            for row in rows
        ],
        expired=[(row["id"], float(row["waited"])) for row in expired],
    )


async def _fetchval(db: ClaimsDb, sql: str, *args: Any) -> Any:
    async with db.connection() as connection:
        return await connection.fetchval(sql, *args)


async def expire(db: ClaimsDb, claim_id: str) -> float | None:
    """Time a queued claim out now; its wait in seconds, or None when it was no longer queued."""
    waited = await _fetchval(db, EXPIRE, claim_id)
    return None if waited is None else float(waited)


async def cancel(db: ClaimsDb, *, claim_id: str, caller: str) -> float | None:
    """Cancel the caller's queued claim; its wait in seconds, or None when it was not queued."""
    outcome = json.dumps(error_body("Cancelled", "the claim was cancelled while queued"))
    waited = await _fetchval(db, CANCEL, claim_id, caller, outcome)
    return None if waited is None else float(waited)


async def requeue(db: ClaimsDb, *, claim_id: str, max_attempts: int) -> bool:
    return await _fetchval(db, REQUEUE, claim_id, max_attempts) is not None


async def has_queued(db: ClaimsDb) -> bool:
    return bool(await _fetchval(db, ANY_IN_QUEUE))


async def queued_templates(db: ClaimsDb) -> list[str]:
    async with db.connection() as connection:
        return [row["template"] for row in await connection.fetch(QUEUED_TEMPLATES)]


async def states(db: ClaimsDb, claim_ids: list[str]) -> dict[str, str]:
    async with db.connection() as connection:
        rows = await connection.fetch(STATES, claim_ids)
    return {row["id"]: row["status"] for row in rows}


async def record(db: ClaimsDb, *, claim_id: str, caller: str) -> Record | None:
    """The caller's claim (None for an unknown id or another caller's claim)."""
    async with db.connection() as connection:
        row: asyncpg.Record | None = await connection.fetchrow(TICKET, claim_id, caller)
    if row is None:
        return None
    position = row["position"]
    return Record(
        id=row["id"],
        status=row["status"],
        response=_json(row["response"]),
        position=None if position is None else int(position),
        overdue=bool(row["overdue"]),
    )
