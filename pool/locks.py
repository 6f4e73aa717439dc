"""Every PostgreSQL advisory-lock key the pool takes, in one place so no two can collide.

A key is the first 8 bytes of SHA-256 over `warmpool.<purpose>:<fleet>`, as a signed bigint
(what `pg_advisory_lock(bigint)` takes). Changing a derivation changes the key: during a rolling
deploy old and new replicas would then not exclude each other, so add a purpose, never rename one.
"""

from __future__ import annotations

import hashlib


def _key(purpose: str, fleet: str) -> int:
    digest = hashlib.sha256(f"warmpool.{purpose}:{fleet}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def tick_leader(fleet: str) -> int:
    """Session-level, held by the one replica that ticks (pool.tick.leader)."""
    return _key("tick", fleet)


def replenish(fleet: str) -> int:
    """Transaction-level, held while counting and reserving `creating` rows (pool.tick.replenish)."""
    return _key("replenish", fleet)


def claim_queue(fleet: str) -> int:
    """Transaction-level, held while the dispatcher pairs queued claims with idle instances
    (pool.claims.queue_db.dispatch), so two replicas never hand out the same queue's head."""
    return _key("claim_queue", fleet)


def owner_quota(owner_id: str) -> int:
    """Transaction-level, held while one owner's claim counts its live agents and registers itself
    (pool.claims.quota), so two claims of the owner never both fit under its limit."""
    return _key("owner_quota", owner_id)
