"""Claims as resources (DESIGN.md §10): `POST /api/pool/claims` answers at once, then the caller
follows the claim (`GET`, its server-sent events) or cancels it (`DELETE`).

Same body, Idempotency-Key and joinUrl dedup as `POST /api/pool/claim`: a retry of the key (or a
claim for a joinUrl this caller's claim already holds) gets that claim, not a second one. Every
route is scoped to the caller who made the claim: another caller's claim is a 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator

from pool.claims import queue, queue_db, quota, service
from pool.claims import repository as repo
from pool.claims.eta import eta_seconds
from pool.claims.records import NewClaim
from pool.claims.schemas import Claim, ClaimCreate, ClaimEnqueue, ClaimError, ClaimTicket
from pool.deps import PoolState
from pool.status import HOLDS_JOIN
from shared.errors import BadRequest, Conflict, NotFound, as_sentence
from shared.logging import get_logger

log = get_logger("pool.claims.queue")

STREAM_POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 15.0


async def create_claim(
    pool: PoolState, body: ClaimEnqueue, *, caller: str, idempotency_key: str | None
) -> ClaimTicket:
    """An idle instance (nobody queued) is claimed and provisioned before answering; otherwise the
    claim is queued (or the claim it duplicates is answered)."""
    settings = pool["settings"]
    timeout = body.timeout_seconds or settings.claim_queue_timeout_seconds
    if timeout > settings.claim_queue_timeout_max_seconds:
        raise BadRequest(f"timeoutSeconds must be at most {settings.claim_queue_timeout_max_seconds}")
    sent = body.claim_body()
    # The key's request is what the caller sent; the template's defaults fill in what it left out.
    digest = service.request_hash(sent)
    template, claim = await pool["templates"].choose(sent)
    for _ in range(service.AFRESH_ROUNDS + 1):
        claim_id = uuid.uuid4().hex
        # An owner's claim is counted and registered under the owner's lock (429 past its limit).
        async with quota.held(pool, claim, template, caller=caller, key=idempotency_key):
            new = NewClaim.of(
                claim, claim_id=claim_id, caller=caller, key=idempotency_key, digest=digest, template=template
            )
            picked = await pool["claims_db"].reserve(new)
            queued = None
            if picked is None:
                queued = await queue.enqueue(
                    pool,
                    claim,
                    claim_id=claim_id,
                    caller=caller,
                    key=idempotency_key,
                    digest=digest,
                    timeout_seconds=timeout,
                    template=template,
                    priority=body.priority,
                )
        if picked is not None:
            started = time.monotonic()
            answer = await service.provision_with_fallback(pool, claim, claim_id, picked)
            pool["metrics"].record_claim("claimed", time.monotonic() - started)
            pool["tick"].wake()
            return ClaimTicket(id=claim_id, status="succeeded", claim=answer)
        if queued is not None:
            pool["recorder"].claim("queued", None)  # a miss for the pictures; its wait is not known yet
            return ClaimTicket(
                id=claim_id, status="queued", position=queued.position, eta_seconds=queued.eta_seconds
            )
        ticket = await _duplicated(pool, claim, caller, idempotency_key, digest)
        if ticket is not None:
            return ticket
        await asyncio.sleep(service.AFRESH_PAUSE_SECONDS)
    raise Conflict("claims for this Idempotency-Key or joinUrl keep changing; retry later")


async def _duplicated(
    pool: PoolState, claim: ClaimCreate, caller: str, key: str | None, digest: str
) -> ClaimTicket | None:
    """The claim this request duplicates; None: claim afresh (it ended, or its agent let go)."""
    async with pool["sessionmaker"]() as session:
        existing = await repo.find_existing(session, caller=caller, key=key, join_url=claim.join_url)
    if existing is None:
        return None
    by_key = key is not None and existing.caller == caller and existing.idempotency_key == key
    if by_key and existing.request_hash != digest:
        raise Conflict("Idempotency-Key was already used for a different claim request")
    if not by_key and existing.status == "succeeded" and existing.instance_status not in HOLDS_JOIN:
        await service.let_join_go(pool, existing)
        return None
    if existing.caller != caller:
        raise Conflict("another caller's agent already holds this joinUrl")
    found = await queue_db.record(pool["claims_db"], claim_id=existing.id, caller=caller)
    return None if found is None else await _ticket(pool, found)


async def get_claim(pool: PoolState, claim_id: str, *, caller: str) -> ClaimTicket:
    found = await _record(pool, claim_id, caller)
    if found.overdue and await queue.time_out(pool, claim_id):
        found = await _record(pool, claim_id, caller)
    return await _ticket(pool, found)


async def cancel_claim(pool: PoolState, claim_id: str, *, caller: str) -> ClaimTicket:
    """Cancel a queued claim (it never gets an instance); 409 once it has one."""
    waited = await queue_db.cancel(pool["claims_db"], claim_id=claim_id, caller=caller)
    if waited is not None:
        log.info("claim.queue.cancelled", claim_id=claim_id, waited_s=round(waited, 1))
        pool["metrics"].record_queue_exit("cancelled", waited, None)
        pool["queue"].ended(claim_id)
    found = await _record(pool, claim_id, caller)
    if found.status != "cancelled":
        raise Conflict(f"the claim is {found.status}: only a queued claim can be cancelled")
    return await _ticket(pool, found)


async def claim_events(pool: PoolState, claim_id: str, *, caller: str) -> AsyncIterator[str]:
    """The claim's server-sent events; the first read happens now, so an unknown id is a 404."""
    first = await get_claim(pool, claim_id, caller=caller)
    return _stream(pool, claim_id, caller, first)


async def _stream(pool: PoolState, claim_id: str, caller: str, ticket: ClaimTicket) -> AsyncIterator[str]:
    """`position` while queued (on every change of position or ETA), `assigned` once it has an
    instance, then one final event named by its outcome (`succeeded`, `failed`, `cancelled`) and
    the end of the stream. Comments keep idle connections open; the stream ends by its bound."""
    settings = pool["settings"]
    bound = time.monotonic() + settings.claim_queue_timeout_max_seconds + settings.claim_stale_seconds
    sent: tuple[object, ...] | None = None
    last_write = time.monotonic()
    with pool["queue"].waiting(claim_id) as moved:
        while True:
            if ticket.status in queue_db.ENDED:
                yield _event(ticket.status, ticket)
                return
            state = (ticket.status, ticket.position, ticket.eta_seconds)
            if state != sent:
                yield _event("position" if ticket.status == "queued" else "assigned", ticket)
                sent, last_write = state, time.monotonic()
            elif time.monotonic() - last_write >= HEARTBEAT_SECONDS:
                yield ": heartbeat\n\n"
                last_write = time.monotonic()
            if time.monotonic() >= bound:
                return
            moved.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), STREAM_POLL_SECONDS)
            try:
                ticket = await get_claim(pool, claim_id, caller=caller)
            except NotFound:
                return  # pruned: nothing more to tell


def _event(name: str, ticket: ClaimTicket) -> str:
    data = json.dumps(ticket.model_dump(mode="json", by_alias=True))
    return f"event: {name}\ndata: {data}\n\n"


async def _record(pool: PoolState, claim_id: str, caller: str) -> queue_db.Record:
    found = await queue_db.record(pool["claims_db"], claim_id=claim_id, caller=caller)
    if found is None:
        raise NotFound("no such claim")
    return found


async def _ticket(pool: PoolState, found: queue_db.Record) -> ClaimTicket:
    eta = None
    if found.status == "queued" and found.position is not None:
        _, measured = await queue.supply(pool)
        eta = eta_seconds(found.position, measured)
    response = found.response or {}
    return ClaimTicket(
        id=found.id,
        status=found.status,
        position=found.position,
        eta_seconds=eta,
        claim=Claim.model_validate(response) if found.status == "succeeded" and response else None,
        error=(
            ClaimError(
                error=as_sentence(str(response.get("detail", "the claim failed"))),
                kind=repo.recorded_kind(response),
                detail=str(response.get("detail", "")),
            )
            if found.status in ("failed", "cancelled") and response
            else None
        ),
    )
