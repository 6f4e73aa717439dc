"""One policy against one trace in simulated time, decided by the pool's own pure functions.

Every tick builds the plan's input (`Observed`: the rows, a services status batch, the runtimes)
from the simulated fleet and applies what `pool.tick.plan.plan` returns; between ticks the
starting prober follows creates (`plan_create`) and promotes ready instances (`pool.status.decide`)
on its own interval, as `pool.tick.prober` does. A claim takes the oldest idle instance, or
waits in order for the next one to become idle; a claimed instance leaves the simulated pool
(its agent's life is not the pool's concern here, and `max_total` is set out of the way).
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bench.sim import fleet
from bench.sim.fleet import CLEAN, PLATFORM, Instance
from bench.sim.platform import Made, Platform, PlatformModel
from bench.sim.policies import Policy
from bench.sim.sizer import Sizer
from bench.sim.traces import Trace
from pool.status import Observation, Rules, Status, decide
from pool.templates.schemas import DEFAULT_TEMPLATE_ID
from pool.tick.plan import (
    Create,
    Created,
    CreateFailed,
    Destroy,
    Observed,
    Update,
    plan,
    plan_create,
)
from pool.tick.targets import PoolTarget, Target, replenish_counts

# Recent refills the sizing reads (as pool.claims.eta keeps: the last 50).
REFILL_SAMPLES = 50
# Idle time is kept per bucket for the budget's rolling 24 h.
BUDGET_BUCKET_S = 300.0
# Event order at one instant: the prober's findings, then the tick, then claims.
PROBE, TICK, CLAIM = 0, 1, 2


@dataclass(frozen=True)
class SimConfig:
    tick_interval_s: float = 30.0
    probe_interval_s: float = 2.0
    max_total: int = 1000
    # After the trace ends, how long claims still waiting may be served.
    overtime_s: float = 3600.0
    rules: Rules = Rules(stuck_timeout_seconds=600.0)


@dataclass
class Outcome:
    policy: str
    trace: str
    claims: int = 0
    hits: int = 0
    waits: list[float] = field(default_factory=list)
    unserved: int = 0
    idle_seconds: float = 0.0
    created: int = 0
    failed_creates: int = 0
    recycled: int = 0
    drained: int = 0
    # (seconds, idle, target) at each tick; arrival times of the claims that found no idle instance.
    timeline: list[tuple[float, int, int]] = field(default_factory=list)
    misses: list[float] = field(default_factory=list)
    limited_by: Counter[str] = field(default_factory=Counter)
    last_reason: str = ""


class Simulation:
    def __init__(
        self, policy: Policy, trace: Trace, model: PlatformModel, seed: int, config: SimConfig = SimConfig()
    ) -> None:
        self.policy, self.trace, self.config = policy, trace, config
        self.platform = Platform(model, seed)
        self.now = 0.0
        self.events: list[tuple[float, int, int, str, str]] = []
        self.seq = 0
        self.fleet: dict[str, Instance] = {}
        self.counts: Counter[str] = Counter()
        self.queue: deque[float] = deque()
        self.samples: deque[tuple[str | None, float]] = deque(maxlen=REFILL_SAMPLES)
        self.out = Outcome(policy.name, trace.name)
        self.target = policy.min_idle
        self.sizer = Sizer(policy) if policy.kind == "ours" else None
        self.claims_since_tick = 0
        self.idle_clock = 0.0
        self.buckets: deque[float] = deque([0.0], maxlen=int(24 * 3600 / BUDGET_BUCKET_S))
        self.bucket_end = BUDGET_BUCKET_S
        self.ids = 0

    # --- the clock -----------------------------------------------------------------------------

    def at(self, seconds: float) -> datetime:
        return self.trace.at(seconds)

    def push(self, when: float, order: int, kind: str, arg: str = "") -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, order, self.seq, kind, arg))

    def prober_time(self, t: float) -> float:
        step = self.config.probe_interval_s
        return math.ceil(t / step - 1e-9) * step if step > 0 else t

    def run(self) -> Outcome:
        if self.policy.kind != "ours":
            # A static pool starts full: it is measured as it runs, not while it fills.
            for _ in range(self.policy.min_idle):
                self.ids += 1
                instance = Instance(f"i{self.ids}", 0.0, Made(0.0, 0.0, failed=False), status="idle")
                self.fleet[instance.id] = instance
                self.counts["idle"] += 1
        for claim in self.trace.claims:
            self.push(claim, CLAIM, "claim")
        self.push(0.0, TICK, "tick")
        end = self.trace.duration + self.config.overtime_s
        while self.events:
            when, _, _, kind, arg = heapq.heappop(self.events)
            self.advance(when)
            if when > end or (when > self.trace.duration and not self.queue and kind == "tick"):
                break
            {"claim": self.on_claim, "tick": self.on_tick, "made": self.on_made, "ready": self.on_ready}[
                kind
            ](arg)
        # A claim never served counts the time it waited until the run ended (its wait is at least that).
        unserved = [arrived for arrived in self.queue if arrived >= self.trace.measure_from]
        self.out.unserved = len(unserved)
        self.out.waits += [self.now - arrived for arrived in unserved]
        return self.out

    def advance(self, when: float) -> None:
        """Count idle time up to `when`: in the measured window, and per bucket for the budget."""
        idle = self.counts["idle"]
        start, stop = max(self.idle_clock, self.trace.measure_from), min(when, self.trace.duration)
        if stop > start:
            self.out.idle_seconds += idle * (stop - start)
        self.buckets[-1] += idle * (when - self.idle_clock)
        while when >= self.bucket_end:
            self.buckets.append(0.0)
            self.bucket_end += BUDGET_BUCKET_S
        self.idle_clock = self.now = max(self.now, when)

    # --- instances ------------------------------------------------------------------------------

    def new_instance(self, requested: float) -> Instance:
        self.ids += 1
        instance = Instance(f"i{self.ids}", requested, self.platform.create(requested), changed=requested)
        self.fleet[instance.id] = instance
        self.counts["creating"] += 1
        if self.measuring():
            self.out.created += 1
        self.push(self.prober_time(instance.made.made_at), PROBE, "made", instance.id)
        if not instance.made.failed:
            self.push(self.prober_time(instance.made.ready_at), PROBE, "ready", instance.id)
        return instance

    def create(self, count: int) -> None:
        for _ in range(count):
            self.new_instance(self.now)

    def set_status(
        self, instance: Instance, status: Status, failed_probes: int = 0, deploy_status: str | None = None
    ) -> None:
        became_idle = status == "idle" != instance.status
        if status != instance.status:
            self.counts[instance.status] -= 1
            self.counts[status] += 1
            instance.status, instance.changed = status, self.now
            if became_idle:
                self.samples.append((PLATFORM, self.now - instance.requested))
        instance.failed_probes, instance.deploy_status = failed_probes, deploy_status
        instance.row = None
        if became_idle:
            self.dispatch()

    def remove(self, instance_id: str) -> None:
        instance = self.fleet.pop(instance_id, None)
        if instance is not None:
            self.counts[instance.status] -= 1

    def plan_target(self) -> Target:
        queued = 0 if self.policy.kind == "original" else len(self.queue)
        # The simulator models one template, the default one.
        pool = PoolTarget(min_idle=self.target, queued=queued)
        return Target((pool,), self.config.max_total, rules=self.config.rules)

    # --- events ---------------------------------------------------------------------------------

    def on_made(self, instance_id: str) -> None:
        instance = self.fleet.get(instance_id)
        if instance is None or instance.status != "creating":
            return
        row = fleet.row(instance, self.at)
        batch = fleet.batch([instance], self.now, self.at)
        action = plan_create(row, batch, self.plan_target(), self.at(self.now))
        self.apply([action] if action is not None else [])

    def on_ready(self, instance_id: str) -> None:
        instance = self.fleet.get(instance_id)
        if instance is None or instance.status != "starting":
            return
        observation = Observation(
            "running", healthy=True, runtime=CLEAN, age_seconds=self.now - instance.changed
        )
        decision = decide("starting", observation, self.config.rules)
        if decision.action == "set":
            self.set_status(instance, decision.status, decision.failed_probes, "running")

    def on_claim(self, _: str) -> None:
        measured = self.measuring()
        self.claims_since_tick += 1
        self.out.claims += measured
        idle = [instance for instance in self.fleet.values() if instance.status == "idle"]
        if idle and not self.queue:
            oldest = min(idle, key=lambda instance: instance.requested)
            self.remove(oldest.id)
            if measured:
                self.out.hits += 1
                self.out.waits.append(0.0)
        else:
            self.queue.append(self.now)
            if measured:
                self.out.misses.append(self.now)
        # The refill after a claim.
        if self.policy.kind == "original":
            self.create(1)
        else:
            by_template = Counter({(DEFAULT_TEMPLATE_ID, status): n for status, n in self.counts.items()})
            self.create(replenish_counts(by_template, self.plan_target()).get(DEFAULT_TEMPLATE_ID, 0))

    def dispatch(self) -> None:
        idle = [instance for instance in self.fleet.values() if instance.status == "idle"]
        while self.queue and idle:
            arrived = self.queue.popleft()
            oldest = min(idle, key=lambda instance: instance.requested)
            idle.remove(oldest)
            self.remove(oldest.id)
            if self.trace.measure_from <= arrived < self.trace.duration:
                self.out.waits.append(self.now - arrived)

    def on_tick(self, _: str) -> None:
        now = self.at(self.now)
        if self.sizer is not None:
            self.size_and_retire(self.sizer, now)
        instances = list(self.fleet.values())
        rows = [fleet.row(instance, self.at) for instance in instances]
        runtimes = {i.id: CLEAN for i in instances if i.status in ("idle", "starting") and i.ready(self.now)}
        observed = Observed(rows, fleet.batch(instances, self.now, self.at), runtimes)
        self.apply(plan(observed, self.plan_target(), now))
        self.out.timeline.append((self.now, self.counts["idle"], self.target))
        self.push(self.now + self.config.tick_interval_s, TICK, "tick")

    def size_and_retire(self, sizer: Sizer, now: datetime) -> None:
        sizing = sizer.target(now, self.claims_since_tick, self.samples, sum(self.buckets) / 3600)
        self.claims_since_tick = 0
        self.target = sizing.target
        if self.measuring() and sizing.limited_by:
            self.out.limited_by[sizing.limited_by] += 1
        self.out.last_reason = sizing.reason
        recycled = sizer.recycle([fleet.row(i, self.at) for i in self.fleet.values()], now)
        self.out.recycled += len(recycled)
        self.apply(recycled)
        rows = [fleet.row(i, self.at) for i in self.fleet.values()]
        drained = sizer.drain(rows, self.target, now, len(self.queue))
        self.out.drained += len(drained)
        self.apply(drained)

    def measuring(self) -> bool:
        return self.trace.measure_from <= self.now < self.trace.duration

    def apply(self, actions: Sequence[object]) -> None:
        for action in actions:
            if isinstance(action, Create):
                self.create(action.count)
            elif isinstance(action, Created) and (instance := self.fleet.get(action.instance_id)):
                self.set_status(instance, "starting", deploy_status=action.deploy_status)
            elif isinstance(action, Update) and (instance := self.fleet.get(action.instance_id)):
                self.set_status(instance, action.status, action.failed_probes, action.deploy_status)
            elif isinstance(action, CreateFailed | Destroy):
                if isinstance(action, CreateFailed) and self.measuring():
                    self.out.failed_creates += 1
                self.remove(action.instance_id)
