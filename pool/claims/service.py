"""Claiming an instance (DESIGN.md §3).

The claim owns its transactions rather than using the per-request session: it reserves an
instance in one short transaction, provisions it over HTTP with no database connection held, then
records the outcome in another short transaction. In between, the instance is `claiming` (which the
tick never touches) and the claim row is `pending` (which makes duplicates wait for its answer).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from pool.auth import authenticate_instance
from pool.claims import repository as repo
from pool.claims.db import Duplicate, Picked
from pool.claims.schemas import Claim, ClaimCreate, PendingAcceptanceResult
from pool.deps import PoolState
from pool.instance_client import ProvisionRequest
from pool.status import HOLDS_JOIN
from shared.auth import SecretBox
from shared.errors import AppError, BadRequest, Conflict, Unavailable, UpstreamError
from shared.logging import get_logger

log = get_logger("pool.claims")

POLL_SECONDS = 0.2
EMPTY_RETRY_AFTER = 5


@dataclass(frozen=True)
class _Reserved:
    claim_id: str
    instance: Picked | None


def request_hash(body: ClaimCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim(
    pool: PoolState, body: ClaimCreate, *, idempotency_key: str | None, wait_seconds: int
) -> Claim:
    """Hand out one idle instance, or the first answer to the same claim."""
    settings = pool["settings"]
    if wait_seconds < 0 or wait_seconds > settings.claim_wait_max_seconds:
        raise BadRequest(f"wait must be between 0 and {settings.claim_wait_max_seconds} seconds")
    started = time.monotonic()
    try:
        result, outcome = await _claim(pool, body, idempotency_key, started + wait_seconds)
    except AppError as exc:
        pool["metrics"].record_claim(_failure_outcome(exc), time.monotonic() - started)
        raise
    finally:
        # Refill runs in the tick's task; waking it never delays this answer.
        pool["tick"].wake()
    pool["metrics"].record_claim(outcome, time.monotonic() - started)
    return result


def _failure_outcome(exc: AppError) -> str:
    if isinstance(exc, Unavailable):
        return "empty"
    if isinstance(exc, UpstreamError):
        return "failed"
    return "rejected"


async def _claim(pool: PoolState, body: ClaimCreate, key: str | None, deadline: float) -> tuple[Claim, str]:
    digest = request_hash(body)
    swept = False
    while True:
        reserved = await _reserve(pool, body, key, digest)
        if reserved is None:
            continue
        if isinstance(reserved, repo.ExistingClaim):
            first = await _first_answer(pool, reserved, key, digest)
            if first is not None:
                return first, "deduplicated"
            continue  # the first claim failed or ended: this request becomes a claim of its own
        if reserved.instance is not None:
            return await _provision_with_fallback(pool, body, reserved.claim_id, reserved.instance), "claimed"
        if not swept:
            swept = True
            await _release_stale(pool)
        if time.monotonic() >= deadline:
            log.info("claim.empty")
            raise Unavailable("no idle instance available; retry later", retry_after=EMPTY_RETRY_AFTER)
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


async def _release_stale(pool: PoolState) -> None:
    """Opportunistic cleanup when the pool looks empty: that is when stuck claims hurt."""
    age = pool["settings"].claim_stale_seconds
    async with pool["sessionmaker"]() as session, session.begin():
        released = await repo.release_stale_claims(session, older_than_seconds=age)
    for instance_id in released:
        log.warning("claim.abandoned", instance_id=instance_id)


async def _reserve(
    pool: PoolState, body: ClaimCreate, key: str | None, digest: str
) -> _Reserved | repo.ExistingClaim | None:
    """Register the claim (dedupe) and reserve an idle instance for it.

    The common case (an idle instance, no duplicate) is one statement; anything else takes the
    transactional `register`, which tells a duplicate from an empty pool.
    """
    claim_id = uuid.uuid4().hex
    picked = await pool["claims_db"].reserve(
        claim_id=claim_id, key=key, digest=digest, join_url=body.join_url
    )
    if picked is not None:
        return _Reserved(claim_id=claim_id, instance=picked)
    registered = await pool["claims_db"].register(
        claim_id=claim_id, key=key, digest=digest, join_url=body.join_url
    )
    if not isinstance(registered, Duplicate):
        return _Reserved(claim_id=claim_id, instance=registered)
    async with pool["sessionmaker"]() as session:
        existing = await repo.find_existing(session, key=key, join_url=body.join_url)
    # None: the conflicting claim ended between our insert and our read: try again.
    return existing


async def _first_answer(
    pool: PoolState, existing: repo.ExistingClaim, key: str | None, digest: str
) -> Claim | None:
    """Wait for the claim this request duplicates and return its answer; None means claim afresh."""
    if key is not None and existing.idempotency_key == key and existing.request_hash != digest:
        raise Conflict("Idempotency-Key was already used for a different claim request")
    deadline = time.monotonic() + pool["settings"].claim_duplicate_wait_seconds
    current: repo.ExistingClaim | None = existing
    while current is not None and current.status == "pending":
        if time.monotonic() >= deadline:
            raise Conflict("an identical claim is still in progress; retry later")
        await asyncio.sleep(POLL_SECONDS)
        async with pool["sessionmaker"]() as session:
            current = await repo.get_claim(session, existing.id)
    if current is None or current.response is None:
        return None
    joined_by_url = key is None or current.idempotency_key != key
    if joined_by_url and current.instance_status not in HOLDS_JOIN:
        # The agent on that joinUrl is gone (killed, crashed, dismissed): the join may happen again.
        async with pool["sessionmaker"]() as session, session.begin():
            await repo.release_claim(session, current.id)
        return None
    log.info("claim.deduplicated", claim_id=current.id, instance_id=current.instance_id)
    return Claim.model_validate(current.response)


async def _provision_with_fallback(pool: PoolState, body: ClaimCreate, claim_id: str, first: Picked) -> Claim:
    """Provision the reserved instance; if that fails, recover it and try one other idle instance."""
    tried = [first.id]
    instance: Picked | None = first
    error: UpstreamError | None = None
    while instance is not None:
        try:
            return await _provision(pool, body, claim_id, instance)
        except UpstreamError as exc:
            error = exc
            log.warning("claim.provision_failed", instance_id=instance.id, error=exc.message)
            await _recover(pool, instance, exc.message)
        if len(tried) >= 2:
            break
        instance = await pool["claims_db"].take(claim_id=claim_id, exclude=tried)
        if instance is not None:
            tried.append(instance.id)
    await pool["claims_db"].delete_pending(claim_id)
    assert error is not None
    raise UpstreamError(f"provisioning failed on {len(tried)} instance(s): {error.message}")


def _token(pool: PoolState, instance: Picked) -> str:
    if instance.gateway_token_enc is None or instance.url is None:
        raise UpstreamError("instance has no URL or gateway token")
    try:
        return pool["box"].decrypt(instance.gateway_token_enc)
    except ValueError as exc:
        raise UpstreamError("instance gateway token cannot be decrypted") from exc


async def _provision(pool: PoolState, body: ClaimCreate, claim_id: str, instance: Picked) -> Claim:
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
        claim_id=claim_id,
        instance_id=instance.id,
        new_status=new_status,
        body=body,
        conversation_id=provisioned.conversation_id,
        invite_url=provisioned.invite_url,
        response=result.model_dump(mode="json", by_alias=True),
    )
    if not stored:
        # An operator killed the instance while it was being provisioned.
        raise UpstreamError("instance was removed while the claim was in flight")
    log.info("claim.claimed", instance_id=instance.id, status=new_status)
    return result


async def _recover(pool: PoolState, instance: Picked, reason: str) -> None:
    """Factory-reset a failed instance: clean → idle again; otherwise dead, for the tick to destroy."""
    clean = False
    try:
        token = _token(pool, instance)
        assert instance.url is not None
        timeout = pool["settings"].claim_provision_timeout_seconds
        await pool["instances"].reset(instance.url, token, timeout=timeout)
        clean = (await pool["instances"].status(instance.url, token, timeout=timeout)).clean
    except UpstreamError as exc:
        reason = f"{reason}; reset failed: {exc.message}"
    status = "idle" if clean else "dead"
    async with pool["sessionmaker"]() as session, session.begin():
        await repo.set_status_from_claiming(
            session, instance_id=instance.id, status=status, error=f"provision failed: {reason}"
        )
    log.info("claim.recovered", instance_id=instance.id, status=status)


async def settle_pending_acceptance(
    session: AsyncSession, box: SecretBox, *, instance_id: str, authorization: str | None, accepted: bool
) -> PendingAcceptanceResult:
    """The instance reports that its join was accepted (→ claimed) or refused (→ dead, joinUrl free)."""
    instance = await authenticate_instance(session, box, instance_id=instance_id, authorization=authorization)
    target = "claimed" if accepted else "dead"
    if instance.status == target:
        return PendingAcceptanceResult(instance_id=instance_id, status=target, changed=False)
    changed = await repo.set_status_from(
        session,
        instance_id=instance_id,
        expected="pending_acceptance",
        status=target,
        error=None if accepted else "join was not accepted",
    )
    if not changed:
        raise Conflict(f"instance is {instance.status}, not pending_acceptance")
    if not accepted:
        await repo.release_claims_of(session, instance_id)
    log.info("claim.pending_acceptance.settled", instance_id=instance_id, status=target)
    return PendingAcceptanceResult(instance_id=instance_id, status=target, changed=True)
