"""Claiming an instance (DESIGN.md §3).

The claim owns its transactions rather than using the per-request session: it reserves an
instance in one short transaction, provisions it over HTTP with no database connection held, then
records the outcome in another short transaction. In between, the instance is `claiming` (which the
tick never plans on) and the claim row is `pending` (which makes duplicates wait for its answer).

A claim record goes `pending → succeeded | failed`, each move conditional on `pending`, so the
first outcome recorded (by the claim itself, a kill, or the tick ending it as stale) is the one
every retry of its key, and every duplicate that waited on it, gets. Nothing here loops without
a pause and a bound.

With `?wait=N` a claim that finds no idle instance (or finds others already waiting: no barging)
waits in the queue (`pool.claims.queue`) up to N seconds instead; `wait=0` answers 503 at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from pool.claims import queue, quota, recovery
from pool.claims import repository as repo
from pool.claims.db import DatabaseSlow, Duplicate
from pool.claims.records import Claimed, NewClaim, Picked
from pool.claims.schemas import Claim, ClaimCreate
from pool.config import CLAIM_MAX_INSTANCES
from pool.deps import PoolState
from pool.instance_client import ProvisionRequest
from pool.status import HOLDS_JOIN
from shared.errors import AppError, BadRequest, Conflict, Unavailable, UpstreamError
from shared.logging import get_logger

log = get_logger("pool.claims")

POLL_SECONDS = 0.2
EMPTY_RETRY_AFTER = queue.EMPTY_RETRY_AFTER
# A duplicate whose first claim ended without holding the join any more claims afresh; if claims
# on its key or joinUrl keep ending under it, it gives up after this many rounds (409).
AFRESH_ROUNDS = 3
AFRESH_PAUSE_SECONDS = 0.05


@dataclass(frozen=True)
class _Reserved:
    claim_id: str
    instance: Picked | None


def request_hash(body: ClaimCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    pool: PoolState, body: ClaimCreate, *, caller: str, idempotency_key: str | None, wait_seconds: int
) -> Claim:
    """Hand out one idle instance, or the recorded outcome of the same claim."""
    settings = pool["settings"]
    if wait_seconds < 0 or wait_seconds > settings.claim_wait_max_seconds:
        raise BadRequest(f"wait must be between 0 and {settings.claim_wait_max_seconds} seconds")
    started = time.monotonic()
    try:
        result, outcome = await _claim(pool, body, caller, idempotency_key, wait_seconds)
    except AppError as exc:
        pool["metrics"].record_claim(_failure_outcome(exc), time.monotonic() - started)
        raise
    finally:
        # Refill runs in the tick's task; waking it never delays this answer.
        pool["tick"].wake()
    pool["metrics"].record_claim(outcome, time.monotonic() - started)
    return result


def _failure_outcome(exc: AppError) -> str:
    if isinstance(exc, DatabaseSlow):
        return "unavailable"
    if isinstance(exc, Unavailable):
        return "empty"
    if isinstance(exc, UpstreamError):
        return "failed"
    return "rejected"


async def _claim(
    pool: PoolState, sent: ClaimCreate, caller: str, key: str | None, wait_seconds: int
) -> tuple[Claim, str]:
    # The key's request is what the caller sent; the template's defaults fill in what it left out.
    digest = request_hash(sent)
    template, body = await pool["templates"].choose(sent)
    afresh = 0
    while True:
        async with quota.held(pool, body, template, caller=caller, key=key):  # an owner's limit: 429
            reserved = await _reserve(pool, body, template, caller, key, digest, wait_seconds)
        if isinstance(reserved, _Reserved) and reserved.instance is not None:
            claimed = await provision_with_fallback(pool, body, reserved.claim_id, reserved.instance)
            return claimed, "claimed"
        if isinstance(reserved, queue.Queued):
            return await queue.wait_for_answer(pool, reserved.claim_id, caller, wait_seconds), "queued"
        if isinstance(reserved, _Reserved):
            log.info("claim.empty")
            raise Unavailable("no idle instance available; retry later", retry_after=EMPTY_RETRY_AFTER)
        if reserved is not None:
            first = await _first_answer(pool, reserved, caller, key, digest)
            if first is not None:
                return first, "deduplicated"
        # The claim this one duplicated let its joinUrl go (or ended before we read it): this
        # request becomes a claim of its own, a bounded number of times.
        afresh += 1
        if afresh > AFRESH_ROUNDS:
            raise Conflict("claims for this Idempotency-Key or joinUrl keep changing; retry later")
        await asyncio.sleep(AFRESH_PAUSE_SECONDS)


async def _reserve(
    pool: PoolState,
    body: ClaimCreate,
    template: str,
    caller: str,
    key: str | None,
    digest: str,
    wait_seconds: int,
) -> _Reserved | queue.Queued | repo.ExistingClaim | None:
    """Register the claim (dedupe) and reserve an idle instance for it, or queue it.

    The common case (an idle instance, nobody queued, no duplicate) is one statement; anything
    else queues the claim (`wait_seconds` > 0) or takes the transactional `register`, which tells
    a duplicate from an empty pool. None: a duplicate whose first claim ended between our insert
    and our read.
    """
    claim_id = uuid.uuid4().hex
    db = pool["claims_db"]
    new = NewClaim.of(body, claim_id=claim_id, caller=caller, key=key, digest=digest, template=template)
    picked = await db.reserve(new)
    if picked is not None:
        return _Reserved(claim_id=claim_id, instance=picked)
    if wait_seconds > 0:
        queued = await queue.enqueue(
            pool,
            body,
            claim_id=claim_id,
            caller=caller,
            key=key,
            digest=digest,
            timeout_seconds=wait_seconds,
            template=template,
        )
        if queued is not None:
            return queued
    else:
        registered = await db.register(new)
        if not isinstance(registered, Duplicate):
            return _Reserved(claim_id=claim_id, instance=registered)
    async with pool["sessionmaker"]() as session:
        return await repo.find_existing(session, caller=caller, key=key, join_url=body.join_url)


async def _first_answer(
    pool: PoolState, existing: repo.ExistingClaim, caller: str, key: str | None, digest: str
) -> Claim | None:
    """The recorded outcome of the claim this request duplicates (waiting while it is pending):
    its answer, or its failure raised; None means claim afresh (its agent let the joinUrl go)."""
    by_key = key is not None and existing.caller == caller and existing.idempotency_key == key
    if by_key and existing.request_hash != digest:
        raise Conflict("Idempotency-Key was already used for a different claim request")
    if not by_key and existing.caller != caller:
        if existing.status == "succeeded" and existing.instance_status not in HOLDS_JOIN:
            await let_join_go(pool, existing)
            return None
        raise Conflict("another caller's agent already holds this joinUrl")
    deadline = time.monotonic() + pool["settings"].claim_duplicate_wait_seconds
    current: repo.ExistingClaim | None = existing
    while current is not None and current.status in ("queued", "pending"):
        if time.monotonic() >= deadline:
            raise Conflict("an identical claim is still in progress; retry later")
        await asyncio.sleep(POLL_SECONDS)
        async with pool["sessionmaker"]() as session:
            current = await repo.get_claim(session, existing.id)
    if current is None or current.response is None or current.status == "cancelled":
        return None  # pruned or cancelled meanwhile: nothing recorded to replay
    if current.status == "failed":
        log.info("claim.replayed_failure", claim_id=current.id)
        raise queue.outcome_error(current.response)
    if not by_key and current.instance_status not in HOLDS_JOIN:
        await let_join_go(pool, current)
        return None
    log.info("claim.deduplicated", claim_id=current.id, instance_id=current.instance_id)
    return Claim.model_validate(current.response)


async def let_join_go(pool: PoolState, ended: repo.ExistingClaim) -> None:
    """The agent on that joinUrl is gone (killed, dead, refused): the join may happen again."""
    async with pool["sessionmaker"]() as session, session.begin():
        await repo.release_join(session, ended.id)
    if ended.instance_id is not None:
        pool["recorder"].event(ended.instance_id, "claim.released", actor="claim", claimId=ended.id)


async def provision_with_fallback(pool: PoolState, body: ClaimCreate, claim_id: str, first: Picked) -> Claim:
    """Provision the reserved instance; if that fails, recover it and try one other idle instance.
    A claim ended meanwhile (kill, tick) takes no other instance and answers its recorded outcome."""
    tried = [first.id]
    instance: Picked | None = first
    error = "no instance tried"
    while instance is not None:
        try:
            return await provision(pool, body, claim_id, instance)
        except UpstreamError as exc:
            error = exc.message
            log.warning("claim.provision_failed", instance_id=instance.id, error=exc.message)
            await recover(pool, claim_id, instance, exc.message)
        if len(tried) >= CLAIM_MAX_INSTANCES:
            break
        instance = await pool["claims_db"].take(claim_id=claim_id, exclude=tried)
        if instance is not None:
            tried.append(instance.id)
    raise await fail(pool, claim_id, f"provisioning failed on {len(tried)} instance(s): {error}")


async def fail(pool: PoolState, claim_id: str, detail: str) -> UpstreamError:
    """Record this claim's failure, or, if it had ended already, the outcome recorded first."""
    if await pool["claims_db"].fail(claim_id=claim_id, outcome=repo.failure(detail)):
        return UpstreamError(detail)
    async with pool["sessionmaker"]() as session:
        ended = await repo.get_claim(session, claim_id)
    if ended is not None and ended.status == "failed" and ended.response is not None:
        return UpstreamError(str(ended.response.get("detail", detail)))
    return UpstreamError(detail)


def _token(pool: PoolState, instance: Picked) -> str:
    if instance.gateway_token_enc is None or instance.url is None:
        raise UpstreamError("instance has no URL or gateway token")
    try:
        return pool["box"].decrypt(instance.gateway_token_enc)
    except ValueError as exc:
        raise UpstreamError("instance gateway token cannot be decrypted") from exc


async def provision(pool: PoolState, body: ClaimCreate, claim_id: str, instance: Picked) -> Claim:
    token = _token(pool, instance)
    assert instance.url is not None
    request = ProvisionRequest(
        agent_name=body.agent_name,
        instructions=body.instructions,
        join_url=body.join_url,
        profile_image=body.profile_image,
        metadata=body.metadata,
    )
    provisioned = await pool["instances"].provision(
        instance.url, token, request, timeout=pool["settings"].claim_provision_timeout_seconds
    )
    result = Claim(
        invite_url=provisioned.invite_url,
        conversation_id=provisioned.conversation_id,
        instance_id=instance.id,
        joined=provisioned.joined,
        status=provisioned.status,
        agent_name=body.agent_name,
    )
    new_status = "pending_acceptance" if provisioned.status == "pending_acceptance" else "claimed"
    stored = await pool["claims_db"].mark_claimed(
        Claimed(
            claim_id=claim_id,
            instance_id=instance.id,
            new_status=new_status,
            body=body,
            conversation_id=provisioned.conversation_id,
            invite_url=provisioned.invite_url,
            response=result.model_dump(mode="json", by_alias=True),
        )
    )
    if not stored:
        # An operator killed the instance, or the claim was ended, while it was being provisioned.
        raise UpstreamError("instance was removed while the claim was in flight")
    log.info("claim.claimed", instance_id=instance.id, status=new_status)
    pool["recorder"].event(instance.id, "claim.claimed", actor="claim", claimId=claim_id, status=new_status)
    return result


async def recover(pool: PoolState, claim_id: str, instance: Picked, reason: str) -> None:
    """Factory-reset a failed instance: clean → idle again (then it goes to the queue's head, if
    any); otherwise dead, for the tick to destroy."""
    status = await recovery.recover_instance(
        pool["instances"],
        pool["box"],
        pool["sessionmaker"],
        instance=repo.Claiming(instance.id, instance.url, instance.gateway_token_enc),
        reason=f"provision failed: {reason}",
        timeout=pool["settings"].claim_provision_timeout_seconds,
        claim_id=claim_id,
    )
    if status == "idle":
        pool["queue"].kick()
