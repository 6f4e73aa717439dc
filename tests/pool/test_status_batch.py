"""The pool's form of services' status batch (pool.status_batch) reads what the wire form says,
in a fraction of the memory: a tick holds one entry per instance it observes (its peak RSS)."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime

from pool.status_batch import Batch
from shared import schemas

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def wire(count: int) -> bytes:
    """Services' answer about `count` healthy instances, as it goes over the wire."""
    instances = {
        f"b{n:011d}": schemas.InstanceObservation(
            instance_id=f"b{n:011d}",
            url=f"http://127.0.0.1:40000/i/b{n:011d}",
            deploy_status="running",
            health=schemas.HealthProbe(ok=True, status_code=200, ready=n % 2 == 0, elapsed_ms=20.0 + n),
            created_at=NOW,
            phase="deploying",
            platform="railway",
            platform_ok=True,
        )
        for n in range(count)
    }
    batch = schemas.StatusBatch(observed_at=NOW, instances=instances, unprobed=["b00000000001"])
    return batch.model_dump_json(by_alias=True).encode()


def test_the_pool_reads_every_field_it_uses_as_the_wire_has_it() -> None:
    body = wire(2)
    ours, theirs = Batch.model_validate_json(body), schemas.StatusBatch.model_validate_json(body)
    assert (ours.observed_at, ours.unprobed, ours.platform_ok) == (NOW, ["b00000000001"], True)
    for i, seen in ours.instances.items():
        full = theirs.instances[i]
        assert seen.health is not None and full.health is not None
        assert (seen.health.ok, seen.health.ready) == (full.health.ok, full.health.ready)
        assert (seen.instance_id, seen.url, seen.deploy_status, seen.created_at) == (
            full.instance_id,
            full.url,
            full.deploy_status,
            full.created_at,
        )
        assert (seen.error, seen.phase, seen.platform, seen.platform_ok) == (
            full.error,
            full.phase,
            full.platform,
            full.platform_ok,
        )


def test_a_thousand_entries_take_under_half_a_megabyte() -> None:
    body = wire(1000)
    tracemalloc.start()
    try:
        batch = Batch.model_validate_json(body)
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(batch.instances) == 1000
    # The wire's pydantic models took ~2.2 MB for the same answer.
    assert size < 500_000
