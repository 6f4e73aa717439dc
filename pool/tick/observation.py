"""One row's `pool.status.Observation`, the input of `pool.status.decide`: what this tick saw of the
instance (services' batch, the runtime's answer) and what it did not look at (health not probed
before services' deadline, a runtime not asked), which is no observation rather than a bad one.
Pure, like the plan that calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from pool.status import Observation, Runtime
from pool.status_batch import Batch, Seen

if TYPE_CHECKING:
    from pool.tick.plan import Row


@dataclass(frozen=True)
class Unseen:
    """What this tick did not observe: health not probed by services, runtime not asked."""

    unprobed: frozenset[str] = frozenset()
    not_asked: frozenset[str] = frozenset()
    asked: frozenset[str] | None = None


def observation_for(
    row: Row,
    batch: Batch,
    runtimes: Mapping[str, Runtime | None],
    now: datetime,
    unseen: Unseen = Unseen(),
) -> Observation:
    seen: Seen | None = batch.instances.get(row.id)
    age = (now - row.status_changed_at).total_seconds()
    common = {"age_seconds": age, "failed_probes": row.failed_probes, "ours": row.conversation_id}
    if seen is None:
        return Observation(None, healthy=False, known=False, failed=not batch.platform_ok, **common)  # type: ignore[arg-type]
    health = seen.health
    healthy = health is not None and health.ok and health.ready is not False
    return Observation(
        seen.deploy_status,
        healthy=healthy,
        runtime=runtimes.get(row.id),
        health_known=row.id not in unseen.unprobed,
        runtime_asked=row.id not in unseen.not_asked,
        # `seen.error` is services' note of its last failed operation, not of this observation.
        # Its own platform's answer when services says (several platforms: one failing holds
        # only its instances), else the whole batch's.
        failed=not (batch.platform_ok if seen.platform_ok is None else seen.platform_ok),
        **common,  # type: ignore[arg-type]
    )
