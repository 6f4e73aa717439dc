"""Provisioning the claims the queue assigned (DESIGN.md §10), in the dispatching replica's
background tasks (`pool.claims.dispatcher`)."""

from __future__ import annotations

from pool.claims import queue, queue_db
from pool.claims.records import Picked
from pool.claims.schemas import ClaimCreate
from pool.claims.service import fail, provision, recover
from pool.config import CLAIM_MAX_INSTANCES
from pool.deps import PoolState
from shared.errors import UpstreamError
from shared.logging import get_logger

log = get_logger("pool.claims.queue")


async def provision_assigned(pool: PoolState, assigned: queue_db.Assigned) -> None:
    """Provision a claim the queue assigned an instance, with the same fallback as any claim (one
    other idle instance, which is no barging: this claim was served at its turn). If both fail it
    goes back to its place in the queue once, then fails. A crash here leaves it pending: the
    tick's upkeep puts it back in the queue (pool.claims.repository.requeue_stale_claims)."""
    claim_id = assigned.claim_id
    tried: list[str] = []
    instance: Picked | None = assigned.instance
    error = "no instance tried"
    try:
        body = ClaimCreate.model_validate(assigned.request)
        while instance is not None:
            tried.append(instance.id)
            try:
                await provision(pool, body, claim_id, instance)
                return
            except UpstreamError as exc:
                error = exc.message
                log.warning("claim.provision_failed", claim_id=claim_id, instance_id=instance.id, error=error)
                await recover(pool, claim_id, instance, error)
            if len(tried) >= CLAIM_MAX_INSTANCES:
                break
            instance = await pool["claims_db"].take(claim_id=claim_id, exclude=tried, as_head=True)
        if await queue_db.requeue(pool["claims_db"], claim_id=claim_id, max_attempts=queue.REQUEUES):
            log.info("claim.queue.requeued", claim_id=claim_id)
            pool["queue"].kick()
        else:
            await fail(pool, claim_id, f"provisioning failed on {len(tried)} instance(s): {error}")
    except Exception as exc:  # noqa: BLE001 - a background task: log; the upkeep takes it from here
        log.warning(
            "claim.queue.provision_crashed", claim_id=claim_id, error=f"{type(exc).__name__}: {exc}"[:300]
        )
    finally:
        pool["queue"].ended(claim_id)
