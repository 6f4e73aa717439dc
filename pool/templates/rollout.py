"""Rollouts (DESIGN.md §11): how a template's new version replaces its idle instances. Pure: the
state lives in `templates.rollout_state` (JSON), the tick reads it into each pool's target
(`pool_target`) and moves it on from what it observed (`advance`, `pool.templates.rollouts`).

- `on-replenish`: nothing to do. New creates use the new version; the old idle ones serve until
  claimed (claims take the newest version first). Done as soon as it starts.
- `recreate {floor}`: old idle instances are destroyed now, one more created than the target while
  any remain (the surge, so a pool whose target equals its floor still moves), and never so many
  that fewer than `floor` idle instances of the template are left. Done when no old one is left
  idle or on its way to idle (creating, starting, or claiming: a failed provision hands it back).
- `canary {count, windowSeconds}`: `count` instances of the new version are created on top of the
  target (however far the supply already is above it) while the others keep using the previous
  version. A canary that dies, crashes or fails its
  create rolls the template back: its current version becomes the previous one again, the canaries'
  idle instances are destroyed, the reason is kept. Once `count` canaries have been healthy and the
  window has passed with no failure, the new version is the one every create uses. Canaries that
  are still not healthy a stuck timeout after the window roll the template back too.
Claimed instances are never touched by any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from pool.tick.targets import PoolTarget

Phase = Literal["canary", "replacing", "done", "rolled_back"]
HEALTHY = frozenset({"idle", "claiming", "claimed", "pending_acceptance"})
# An instance that is idle or may still turn idle with no one replacing it: made before the change
# and on its way (creating, starting), or held by a claim whose provision may fail and hand it
# back (claiming). `recreate` is not done while an older one is in any of them.
MAY_TURN_IDLE = frozenset({"idle", "creating", "starting", "claiming"})


@dataclass(frozen=True)
class Rollout:
    version: int
    previous: int
    strategy: str
    phase: Phase
    started_at: datetime
    floor: int = 0
    count: int = 1
    window_seconds: float = 600.0
    healthy: tuple[str, ...] = ()
    reason: str | None = None
    finished_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.phase in ("canary", "replacing")

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "previous": self.previous,
            "strategy": self.strategy,
            "phase": self.phase,
            "startedAt": self.started_at.isoformat(),
            "floor": self.floor,
            "count": self.count,
            "windowSeconds": self.window_seconds,
            "healthy": list(self.healthy),
            "reason": self.reason,
            "finishedAt": self.finished_at.isoformat() if self.finished_at else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rollout:
        finished = data.get("finishedAt")
        return cls(
            version=int(data["version"]),
            previous=int(data["previous"]),
            strategy=str(data["strategy"]),
            phase=data["phase"],
            started_at=datetime.fromisoformat(data["startedAt"]),
            floor=int(data.get("floor", 0)),
            count=int(data.get("count", 1)),
            window_seconds=float(data.get("windowSeconds", 600.0)),
            healthy=tuple(data.get("healthy", ())),
            reason=data.get("reason"),
            finished_at=datetime.fromisoformat(finished) if finished else None,
        )


def start(strategy: Mapping[str, Any], *, version: int, previous: int, now: datetime) -> Rollout:
    """The rollout a new version starts, by its strategy (`{"strategy", ...params}`)."""
    name = str(strategy.get("strategy", "on-replenish"))
    common = {"version": version, "previous": previous, "strategy": name, "started_at": now}
    if name == "recreate":
        return Rollout(**common, phase="replacing", floor=int(strategy.get("floor", 1)))  # type: ignore[arg-type]
    if name == "canary":
        return Rollout(
            **common,  # type: ignore[arg-type]
            phase="canary",
            count=int(strategy.get("count", 1)),
            window_seconds=float(strategy.get("windowSeconds", 600)),
        )
    return Rollout(**common, phase="done", finished_at=now)  # type: ignore[arg-type]


def pool_target(
    template_id: str,
    current_version: int,
    *,
    min_idle: int,
    queued: int,
    rollout: Rollout | None,
    canaries: int = 0,
) -> PoolTarget:
    """The pool the plan aims at for a template in this phase of its rollout; `canaries`: the
    instances of the canary version that exist now (any status)."""
    base = PoolTarget(template_id, current_version, min_idle=min_idle, queued=queued)
    if rollout is None or not rollout.active or rollout.version != current_version:
        return base
    if rollout.phase == "replacing":
        return replace(base, floor=rollout.floor, surge=1)
    missing = max(0, rollout.count - canaries)
    return replace(
        base, version=rollout.previous, canary_version=rollout.version, canary_missing=missing, surge=missing
    )


@dataclass(frozen=True)
class Seen:
    """One instance of the template as the tick left it: its version and status, and whether the
    tick destroyed it or failed its create (`failure`: why)."""

    id: str
    version: int
    status: str
    failure: str | None = None


def advance(rollout: Rollout, seen: Iterable[Seen], now: datetime, *, stuck_seconds: float) -> Rollout:
    """The rollout after what one tick observed; unchanged when nothing moved it."""
    if not rollout.active:
        return rollout
    instances = list(seen)
    if rollout.phase == "replacing":
        if any(
            i.version < rollout.version and i.status in MAY_TURN_IDLE and i.failure is None for i in instances
        ):
            return rollout
        return replace(rollout, phase="done", finished_at=now)
    canaries = [i for i in instances if i.version == rollout.version]
    failed = next((i for i in canaries if i.failure is not None), None)
    if failed is not None:
        reason = f"canary {failed.id} of version {rollout.version} failed: {failed.failure}"
        return replace(rollout, phase="rolled_back", reason=reason, finished_at=now)
    healthy = tuple(sorted({*rollout.healthy, *(i.id for i in canaries if i.status in HEALTHY)}))
    waited = (now - rollout.started_at).total_seconds()
    if len(healthy) >= rollout.count and waited >= rollout.window_seconds:
        reason = f"{len(healthy)} canaries healthy for {rollout.window_seconds:g} s"
        return replace(rollout, healthy=healthy, phase="done", reason=reason, finished_at=now)
    if waited >= rollout.window_seconds + stuck_seconds:
        reason = f"only {len(healthy)} of {rollout.count} canaries became healthy within {waited:.0f} s"
        return replace(rollout, healthy=healthy, phase="rolled_back", reason=reason, finished_at=now)
    return replace(rollout, healthy=healthy)
