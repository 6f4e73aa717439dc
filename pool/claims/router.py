from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query

from pool.auth import ClaimCaller, InstanceAuthorization
from pool.claims import service
from pool.claims.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    Claim,
    ClaimCreate,
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


@router.post("/claim", response_model=Claim, responses=ERRORS)
async def claim(
    body: ClaimCreate,
    pool: PoolDep,
    caller: ClaimCaller,
    wait: Annotated[int, Query(description="Seconds to wait for an idle instance when none is free")] = 0,
    idempotency_key: Annotated[str | None, Header(pattern=IDEMPOTENCY_KEY_PATTERN)] = None,
) -> Claim:
    """Claim an idle instance and provision it with an agent (a retry with its key gets the same outcome)."""
    return await service.claim(pool, body, caller=caller, idempotency_key=idempotency_key, wait_seconds=wait)


@router.post("/pending-acceptance/complete", response_model=PendingAcceptanceResult)
async def complete_pending_acceptance(
    body: PendingAcceptance,
    session: SessionDep,
    pool: PoolDep,
    authorization: InstanceAuthorization,
) -> PendingAcceptanceResult:
    """An instance (with its own gateway token) reports that its join was accepted."""
    return await service.settle_pending_acceptance(
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
    return await service.settle_pending_acceptance(
        session, pool["box"], instance_id=body.instance_id, authorization=authorization, accepted=False
    )
