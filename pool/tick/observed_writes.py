"""Set-based writes for instances whose status a tick does not change.

A tick used to run one transaction per `Update`, status change or not; under load most of them
were probe-counter bumps, and at 10,000 instances a bad minute meant thousands of transactions.
Here a tick's counter/deploy-status updates go in one statement per chunk, and the stamps of
the instances it observed and left alone (last observed; last healthy) in one more. Both stay
conditional on the status the tick read (`AND status = <read>`), so a claim that moved a row
meanwhile wins, as with every status write. Status CHANGES still go one by one
(`instance_writes.apply_update`), each in its own transaction, so each is logged and can fail alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text

from pool.status_batch import Batch
from pool.tick.context import TickContext
from pool.tick.plan import Update
from shared.logging import get_logger

log = get_logger("pool.tick")

CHUNK = 5000

_COUNTERS = text(
    """
    UPDATE instances AS i
    SET failed_probes = v.failed_probes,
        deploy_status = v.deploy_status,
        last_probe_at = now(),
        last_healthy_at = CASE WHEN v.healthy THEN now() ELSE i.last_healthy_at END,
        updated_at = now()
    FROM unnest(
        CAST(:ids AS text[]), CAST(:reads AS text[]), CAST(:failed AS integer[]),
        CAST(:deploys AS text[]), CAST(:healthy AS boolean[])
    ) AS v(id, read, failed_probes, deploy_status, healthy)
    WHERE i.id = v.id AND i.status = v.read
    RETURNING i.id
    """
)

# Only rows whose platform differs: a settled fleet writes nothing here.
_PLATFORMS = text(
    """
    UPDATE instances AS i
    SET platform = v.platform
    FROM unnest(CAST(:ids AS text[]), CAST(:platforms AS text[])) AS v(id, platform)
    WHERE i.id = v.id AND i.platform IS DISTINCT FROM v.platform
    """
)

_SEEN = text(
    """
    UPDATE instances AS i
    SET last_probe_at = now(),
        last_healthy_at = CASE WHEN v.healthy THEN now() ELSE i.last_healthy_at END
    FROM unnest(CAST(:ids AS text[]), CAST(:reads AS text[]), CAST(:healthy AS boolean[]))
        AS v(id, read, healthy)
    WHERE i.id = v.id AND i.status = v.read
    """
)


async def write_counters(ctx: TickContext, updates: Sequence[Update]) -> set[str]:
    """Apply same-status updates (counter, deploy status); returns the ids written."""
    done: set[str] = set()
    for start in range(0, len(updates), CHUNK):
        chunk = updates[start : start + CHUNK]
        params = {
            "ids": [u.instance_id for u in chunk],
            "reads": [u.read for u in chunk],
            "failed": [u.failed_probes for u in chunk],
            "deploys": [u.deploy_status for u in chunk],
            "healthy": [u.healthy for u in chunk],
        }
        async with ctx.sessionmaker.begin() as session:
            done.update((await session.execute(_COUNTERS, params)).scalars())
    return done


async def stamp_seen(ctx: TickContext, seen: Sequence[tuple[str, str, bool]]) -> None:
    """Observed stamps of (id, status read, healthy) for rows observed and left unchanged: the
    last observation (`last_probe_at`, which orders the rotation) and, if healthy, last-healthy."""
    for start in range(0, len(seen), CHUNK):
        chunk = seen[start : start + CHUNK]
        params = {
            "ids": [i for i, _, _ in chunk],
            "reads": [r for _, r, _ in chunk],
            "healthy": [h for *_, h in chunk],
        }
        async with ctx.sessionmaker.begin() as session:
            await session.execute(_SEEN, params)


async def record_platforms(ctx: TickContext, batch: Batch) -> None:
    """Each instance's platform as the batch reports it (the queue's ETA reads it)."""
    placed = [(i, seen.platform) for i, seen in batch.instances.items() if seen.platform is not None]
    try:
        for start in range(0, len(placed), CHUNK):
            chunk = placed[start : start + CHUNK]
            params = {"ids": [i for i, _ in chunk], "platforms": [p for _, p in chunk]}
            async with ctx.sessionmaker.begin() as session:
                await session.execute(_PLATFORMS, params)
    except Exception as exc:  # noqa: BLE001 - informative only: the next tick writes it again
        log.warning("tick.platforms_record_failed", error=f"{type(exc).__name__}: {exc}"[:300])
