"""An instance settles its pending join (DESIGN.md §3): accepted → claimed, refused → dead with
its joinUrl free for another claim. Called by the instance itself, with its own credentials."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pool.auth import authenticate_instance
from pool.claims import repository as repo
from pool.claims.schemas import PendingAcceptanceResult
from shared.auth import SecretBox
from shared.errors import Conflict
from shared.logging import get_logger

log = get_logger("pool.claims")


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
