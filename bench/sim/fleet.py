"""The simulated instances, and what the pool reads about them: its rows and services' answers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from bench.sim.platform import Made
from pool.status import Runtime, Status
from pool.status_batch import Batch, Health, Seen
from pool.tick.plan import Row

CLEAN = Runtime(None, clean=True)
HEALTHY = Health(ok=True, ready=True)
PLATFORM = "sim"
Clock = Callable[[float], datetime]


@dataclass
class Instance:
    id: str
    requested: float
    made: Made
    status: Status = "creating"
    changed: float = 0.0
    failed_probes: int = 0
    deploy_status: str | None = None
    row: Row | None = None
    # What services reports, by how far the create is (0: being made, 1: made, 2: ready).
    seen: dict[int, Seen] = field(default_factory=dict)

    def ready(self, now: float) -> bool:
        return not self.made.failed and now >= self.made.ready_at


def row(instance: Instance, at: Clock) -> Row:
    """The pool's row of the instance (kept until its status changes)."""
    if instance.row is None:
        instance.row = Row(
            instance.id,
            instance.status,
            at(instance.requested),
            at(instance.changed),
            instance.failed_probes,
            deploy_status=instance.deploy_status,
        )
    return instance.row


def seen(instance: Instance, now: float, at: Clock) -> Seen:
    """What services reports about the instance at `now` (built once per stage of its create)."""
    made = instance.made
    stage = (now >= made.made_at) + (now >= made.ready_at)
    if stage not in instance.seen:
        phase, url, deploy, health = "creating", None, None, None
        if now >= made.made_at:
            phase = "failed" if made.failed else "deploying"
            url = None if made.failed else f"http://{instance.id}.sim"
            deploy = "running" if now >= made.ready_at else "deploying"
            health = HEALTHY if now >= made.ready_at else None
        instance.seen[stage] = Seen(
            instance_id=instance.id,
            url=url,
            deploy_status=deploy,
            health=health,
            created_at=at(instance.requested),
            error="create failed (simulated)" if phase == "failed" else None,
            phase=phase,
            platform=PLATFORM,
            platform_ok=True,
        )
    return instance.seen[stage]


def batch(instances: Iterable[Instance], now: float, at: Clock) -> Batch:
    """Services' `/status/batch` answer about `instances`: every one probed, the platform up."""
    return Batch.model_construct(
        observed_at=at(now),
        instances={instance.id: seen(instance, now, at) for instance in instances},
        unprobed=[],
        orphans=[],
        platform_ok=True,
        platform_error=None,
    )
