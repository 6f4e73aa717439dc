"""What each template's pool aims at (DESIGN.md §11, §12), and the one formula for how many
instances to create: the plan (`pool.tick.plan`) and the reservation under the lock
(`pool.tick.replenish`) both use it. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from pool.status import Rules, Status
from pool.templates.schemas import DEFAULT_TEMPLATE_ID

# A row that still counts toward the target (or toward max_total) after the plan's destroys.
SUPPLY: frozenset[Status] = frozenset({"idle", "starting", "creating"})


@dataclass(frozen=True)
class PoolTarget:
    """One template's pool (DESIGN.md §11): the version new creates use, and the idle supply it
    aims at: `min_idle` plus the claims queued for it (each is demand an idle instance would meet),
    plus a rollout's `surge` (pool.templates.rollout). An idle instance of a newer version than
    `version` that is not the canary's was rolled back: it is destroyed."""

    template_id: str = DEFAULT_TEMPLATE_ID
    version: int = 1
    min_idle: int = 0
    queued: int = 0
    surge: int = 0
    # `recreate` in progress: older idle instances are destroyed while `floor` idle ones remain.
    floor: int | None = None
    # `canary` in progress: the canaries' version, and how many are still to be created.
    canary_version: int | None = None
    canary_missing: int = 0
    # Idle instances the sizing step retires this tick (pool.tick.sizing): (instance id, why).
    retire: tuple[tuple[str, str], ...] = ()

    def versions_for(self, count: int) -> list[tuple[int, int]]:
        """(version, how many) of `count` new instances: the missing canaries first, the rest of
        the version creates use. The tick's plan and the refill after a claim both split so."""
        canaries = min(count, self.canary_missing) if self.canary_version is not None else 0
        split = [(self.canary_version or self.version, canaries), (self.version, count - canaries)]
        return [(version, n) for version, n in split if n > 0]


@dataclass(frozen=True)
class Target:
    # One per live template; a template not here (archived) gets no creates, and its idle
    # instances are drained.
    pools: tuple[PoolTarget, ...]
    max_total: int
    rules: Rules = field(default_factory=Rules)
    orphan_grace_seconds: float = 600.0
    # A `creating` row services does not know this long after it was reserved is a create that
    # never reached services (the pool died before asking, every attempt was lost): dropped.
    # Longer than the pool's create call with all its retries, so a create still being handed
    # over is never dropped. A create services knows is never timed out here: services bounds it.
    create_lost_seconds: float = 600.0
    # Before that, such a create is handed over again each tick once this old (idempotent: a
    # create services holds is answered with its phase, never made twice).
    create_resend_seconds: float = 60.0
    # False while create failures are backing off.
    may_create: bool = True

    def pool(self, template_id: str) -> PoolTarget | None:
        return next((p for p in self.pools if p.template_id == template_id), None)


def _deficit(pool: PoolTarget, supply: int) -> int:
    """What one template's supply lacks of its target; the canaries still missing at least, since
    a supply above the target (instances made for claims that went, an older version's) would
    otherwise keep a canary from ever being made."""
    missing = pool.canary_missing if pool.canary_version is not None else 0
    return max(pool.min_idle + pool.queued + pool.surge - supply, missing)


def replenish_counts(counts: Mapping[tuple[str, str], int], target: Target) -> dict[str, int]:
    """The deficit per template: instances to create so that each template's supply reaches its
    min_idle plus its queued claims (and a canary rollout has its canaries), all within
    max_total. The one formula, for this plan and for the reservation under the lock
    (`pool.tick.replenish`). When max_total leaves less room than
    the deficits add up to, the room goes round the templates short of their targets, one each
    in turn, so one template's burst never starves another's floor."""
    if not target.may_create:
        return {}
    supply: Counter[str] = Counter()
    for (template_id, status), n in counts.items():
        if status in SUPPLY:
            supply[template_id] += n
    deficits = {
        p.template_id: deficit for p in target.pools if (deficit := _deficit(p, supply[p.template_id])) > 0
    }
    room = target.max_total - sum(counts.values())
    wanted: Counter[str] = Counter()
    while room > 0 and deficits:
        for template_id in list(deficits)[:room]:
            wanted[template_id] += 1
            room -= 1
            deficits[template_id] -= 1
            if deficits[template_id] == 0:
                del deficits[template_id]
    return dict(wanted)
