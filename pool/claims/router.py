from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import StreamingResponse

from pool.auth import ClaimCaller, InstanceAuthorization
from pool.claims import acceptance, resources, service
from pool.claims.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    Claim,
    ClaimCreate,
    ClaimEnqueue,
    ClaimTicket,
    PendingAcceptance,
    PendingAcceptanceResult,
)
from pool.deps import PoolDep
from shared.db import SessionDep

router = APIRouter(prefix="/api/pool", tags=["claims"])

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad wait or Idempotency-Key"},
    401: {"description": "Missing or wrong bearer token"},
    409: {
        "description": "Idempotency-Key reused for another request, its first claim still in flight, "
        "or the joinUrl held by another caller's agent"
    },
    502: {"description": "Provisioning failed on the instances tried (replayed to every retry of the claim)"},
    503: {"description": "No idle instance (Retry-After says when to retry)"},
}
TICKET_ERRORS: dict[int | str, dict[str, Any]] = {
    401: ERRORS[401],
    404: {"description": "No such claim, or another caller's"},
}
ClaimId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@router.post("/claim", response_model=Claim, responses=ERRORS)
async def claim(
    body: ClaimCreate,
    pool: PoolDep,
    caller: ClaimCaller,
    wait: Annotated[int, Query(description="Seconds to wait for an idle instance when none is free")] = 0,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY_PATTERN)] = None,
) -> Claim:
    """Claim an idle instance and provision it with an agent (a retry with its key gets the same outcome);
    with `wait`, wait up to that many seconds in the queue."""
    return await service.claim(pool, body, caller=caller, idempotency_key=idempotency_key, wait_seconds=wait)


@router.post(
    "/claims",
    status_code=202,
    response_model=ClaimTicket,
    responses={k: v for k, v in ERRORS.items() if k != 503},
)
async def create_claim(
    body: ClaimEnqueue,
    pool: PoolDep,
    caller: ClaimCaller,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY_PATTERN)] = None,
) -> ClaimTicket:
    """Claim an idle instance now if nobody waits (`succeeded`), else queue the claim (`queued`)."""
    return await resources.create_claim(pool, body, caller=caller, idempotency_key=idempotency_key)


@router.get("/claims/{claim_id}", response_model=ClaimTicket, responses=TICKET_ERRORS)
async def get_claim(claim_id: ClaimId, pool: PoolDep, caller: ClaimCaller) -> ClaimTicket:
    """A claim of this caller: its place and ETA while queued, then its answer or why it failed."""
    return await resources.get_claim(pool, claim_id, caller=caller)


@router.get("/claims/{claim_id}/events", responses=TICKET_ERRORS)
async def claim_events(claim_id: ClaimId, pool: PoolDep, caller: ClaimCaller) -> StreamingResponse:
    """Server-sent events: `position` changes, `assigned`, then `succeeded`, `failed` or `cancelled`."""
    stream = await resources.claim_events(pool, claim_id, caller=caller)
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.delete(
    "/claims/{claim_id}",
    response_model=ClaimTicket,
    responses={**TICKET_ERRORS, 409: {"description": "The claim already has an instance, or has ended"}},
)
async def cancel_claim(claim_id: ClaimId, pool: PoolDep, caller: ClaimCaller) -> ClaimTicket:
    """Cancel a queued claim of this caller: it never gets an instance."""
    return await resources.cancel_claim(pool, claim_id, caller=caller)


@router.post("/pending-acceptance/complete", response_model=PendingAcceptanceResult)
async def complete_pending_acceptance(
    body: PendingAcceptance,
    session: SessionDep,
    pool: PoolDep,
    authorization: InstanceAuthorization,
) -> PendingAcceptanceResult:
    """An instance (with its own gateway token) reports that its join was accepted."""
    return await acceptance.settle_pending_acceptance(
        session, pool["box"], instance_id=body.instance_id, authorization=authorization, accepted=True
    )


@router.post("/pending-acceptance/fail", response_model=PendingAcceptanceResult)
async def fail_pending_acceptance(
    body: PendingAcceptance,
    session: SessionDep,
    pool: PoolDep,
    authorization: InstanceAuthorization,
) -> PendingAcceptanceResult:
    """An instance (with its own gateway token) reports that its join was refused."""
    return await acceptance.settle_pending_acceptance(
        session, pool["box"], instance_id=body.instance_id, authorization=authorization, accepted=False
    )
