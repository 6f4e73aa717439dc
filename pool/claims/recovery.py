"""Getting an instance out of `claiming`, and the tick's upkeep of the claims table (DESIGN.md §14.3).

`recover_instance` is the one recovery path: ask the runtime to reset, check `/convos/status`;
clean → `idle` again, anything else → `dead` (the tick destroys and replaces it). A claim runs it
after a failed provision; the tick runs it on every `claiming` instance no pending claim holds
(its claim ended: abandoned past the stale bound, or killed), since nothing else would ever move
such an instance (the tick plans nothing on `claiming`).

`upkeep` runs on the tick leader before each observation: put stale pending claims that came
from the queue back in it while their deadline has not passed, end the other stale pending claims
(recording a failure their retries replay), recover orphaned `claiming` instances, prune ended
claim records past POOL_CLAIM_RETENTION_HOURS in bounded batches (each its own short transaction).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.activity import log as event_log
from pool.claims import repository as repo
from pool.config import Settings
from pool.instance_client import InstanceClient
from shared.auth import SecretBox
from shared.errors import UpstreamError
from shared.logging import get_logger

log = get_logger("pool.claims")

# Orphans recovered per tick, at most this many at once: each costs up to two instance calls.
RECOVER_PER_TICK = 20
RECOVER_CONCURRENCY = 5
# Records deleted per statement, and statements per tick: a backlog drains over a few ticks
# without one long transaction or a tick that never ends.
PRUNE_BATCH = 1000
PRUNE_BATCHES_PER_TICK = 10


@dataclass
class Upkeep:
    requeued: int = 0
    ended: int = 0
    recovered: dict[str, str] = field(default_factory=dict)
    pruned: int = 0


async def recover_instance(
    instances: InstanceClient,
    box: SecretBox,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    instance: repo.Claiming,
    reason: str,
    timeout: float,
    claim_id: str | None,
) -> str:
    """Factory-reset a `claiming` instance: clean → idle, otherwise dead. The write is conditional
    on `claiming` and on no pending claim but `claim_id` holding it. Returns the status chosen."""
    clean = False
    try:
        if instance.url is None or instance.gateway_token_enc is None:
            raise UpstreamError("instance has no URL or gateway token")
        try:
            token = box.decrypt(instance.gateway_token_enc)
        except ValueError as exc:
            raise UpstreamError("instance gateway token cannot be decrypted") from exc
        await instances.reset(instance.url, token, timeout=timeout)
        clean = (await instances.status(instance.url, token, timeout=timeout)).clean
    except UpstreamError as exc:
        reason = f"{reason}; reset failed: {exc.message}"
    status = "idle" if clean else "dead"
    async with sessionmaker() as session, session.begin():
        if await repo.set_status_from_claiming(
            session, instance_id=instance.id, status=status, error=reason, claim_id=claim_id
        ):
            await event_log.add(
                session, instance.id, "claim.failed", actor="pool", status=status, reason=reason
            )
    log.info("claim.recovered", instance_id=instance.id, status=status)
    return status


async def upkeep(
    sessionmaker: async_sessionmaker[AsyncSession],
    instances: InstanceClient,
    box: SecretBox,
    settings: Settings,
) -> Upkeep:
    done = Upkeep()
    async with sessionmaker() as session, session.begin():
        stale = settings.claim_stale_seconds
        requeued = await repo.requeue_stale_claims(session, older_than_seconds=stale)
        ended = await repo.end_stale_claims(session, older_than_seconds=stale)
        orphans = await repo.claiming_without_claim(session, limit=RECOVER_PER_TICK)
    done.requeued, done.ended = len(requeued), len(ended)
    for claim_id, instance_id in requeued:
        log.warning("tick.claim.requeued", claim_id=claim_id, instance_id=instance_id)
    for claim_id, held in ended:
        log.warning("tick.claim.abandoned", claim_id=claim_id, instance_id=held)
    slots = asyncio.Semaphore(RECOVER_CONCURRENCY)

    async def recover(orphan: repo.Claiming) -> None:
        async with slots:
            try:
                done.recovered[orphan.id] = await recover_instance(
                    instances,
                    box,
                    sessionmaker,
                    instance=orphan,
                    reason="claiming with no pending claim (its claim ended)",
                    timeout=settings.claim_provision_timeout_seconds,
                    claim_id=None,
                )
            except Exception as exc:  # noqa: BLE001 - one instance never stops the tick; next tick retries
                log.warning("tick.claim.recover_failed", instance_id=orphan.id, error=f"{type(exc).__name__}")

    await asyncio.gather(*(recover(orphan) for orphan in orphans))
    for _ in range(PRUNE_BATCHES_PER_TICK):
        async with sessionmaker() as session, session.begin():
            pruned = await repo.prune_claims(
                session, older_than_hours=settings.claim_retention_hours, limit=PRUNE_BATCH
            )
        done.pruned += pruned
        if pruned < PRUNE_BATCH:
            break
    if done.pruned:
        log.info("tick.claims.pruned", count=done.pruned)
    return done
