"""Prometheus metrics, one registry per app instance (two apps in one test process never collide).

The tick records through `observe_tick`, `record_platform_call` and `record_create_failure`.
`instances`, `claim_queue_depth` and the per-platform gauges are filled from the database at scrape
time, so they are right on every replica (the platforms as the tick last read them from services); the
queue's wait and ETA error are observed by the replica that moved the claim.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from pool.templates.schemas import TemplatePool
from shared.schemas import PlatformView

CLAIM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TICK_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
QUEUE_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class PoolMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.claim_listener: Callable[[str, float | None], None] | None = None
        self.instances = Gauge(
            "pool_instances",
            "Instances by status and template",
            ["status", "template"],
            registry=self.registry,
        )
        self.target_idle = Gauge(
            "pool_target_idle",
            "Idle instances each template's pool aims at",
            ["template"],
            registry=self.registry,
        )
        self.claims = Counter("pool_claims", "Claims by outcome", ["outcome"], registry=self.registry)
        # `labels()` looks its child up under a lock on every call; a claim records one outcome
        # of a handful, so each outcome's child is looked up once.
        self._claims_by_outcome: dict[str, Counter] = {}
        # The group commit (pool.claims.coalesce): how often concurrent claims' writes went as one
        # statement, and how many claims did; their ratio is the mean batch.
        self.claim_write_batches = Counter(
            "pool_claim_write_batches",
            "Claim writes sent as one statement for several concurrent claims, by write",
            ["write"],
            registry=self.registry,
        )
        self.claim_writes_batched = Counter(
            "pool_claim_writes_batched",
            "Claims whose write went in such a batch, by write (reserve, claimed)",
            ["write"],
            registry=self.registry,
        )
        self.claim_latency = Histogram(
            "pool_claim_latency_seconds", "Claim latency", buckets=CLAIM_BUCKETS, registry=self.registry
        )
        self.tick_duration = Histogram(
            "pool_tick_duration_seconds",
            "Reconcile tick duration",
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self.platform_calls = Counter(
            "pool_platform_calls",
            "Calls from the pool to services, by operation and outcome",
            ["operation", "outcome"],
            registry=self.registry,
        )
        self.create_failures = Counter(
            "pool_create_failures", "Instance creations that failed", registry=self.registry
        )
        self.queue_depth = Gauge(
            "pool_claim_queue_depth", "Claims waiting in the queue", ["template"], registry=self.registry
        )
        self.queue_wait = Histogram(
            "pool_claim_queue_wait_seconds",
            "Time a claim spent in the queue, by how it left (assigned, timed_out, cancelled)",
            ["outcome"],
            buckets=QUEUE_BUCKETS,
            registry=self.registry,
        )
        self.eta_error = Histogram(
            "pool_claim_eta_error_seconds",
            "Absolute difference between the ETA given at enqueue and the wait, at assignment",
            buckets=QUEUE_BUCKETS,
            registry=self.registry,
        )
        self.platform_in_use = Gauge(
            "pool_platform_in_use",
            "Live instances services placed on each platform (creates in flight included)",
            ["platform"],
            registry=self.registry,
        )
        self.platform_capacity = Gauge(
            "pool_platform_capacity",
            "Each platform's capacity (+Inf: no cap, 0: draining)",
            ["platform"],
            registry=self.registry,
        )
        self.platform_backing_off = Gauge(
            "pool_platform_backing_off",
            "1 while placement skips the platform after repeated failures",
            ["platform"],
            registry=self.registry,
        )

    def record_claim(self, outcome: str, seconds: float) -> None:
        counter = self._claims_by_outcome.get(outcome)
        if counter is None:
            counter = self._claims_by_outcome[outcome] = self.claims.labels(outcome=outcome)
        counter.inc()
        self.claim_latency.observe(seconds)
        # The dashboard's pictures count the same outcomes per minute (pool/activity/recorder.py).
        if self.claim_listener is not None:
            self.claim_listener(outcome, seconds)

    def record_write_batch(self, write: str, claims: int) -> None:
        self.claim_write_batches.labels(write=write).inc()
        self.claim_writes_batched.labels(write=write).inc(claims)

    def observe_tick(self, seconds: float) -> None:
        self.tick_duration.observe(seconds)

    def record_platform_call(self, operation: str, outcome: str) -> None:
        self.platform_calls.labels(operation=operation, outcome=outcome).inc()

    def record_create_failure(self) -> None:
        self.create_failures.inc()

    def record_queue_exit(self, outcome: str, waited: float, eta: float | None) -> None:
        self.queue_wait.labels(outcome=outcome).observe(waited)
        if outcome == "assigned" and eta is not None:
            self.eta_error.observe(abs(waited - eta))

    def set_queue_depths(self, depths: dict[str, int]) -> None:
        self.queue_depth.clear()
        for template, depth in depths.items():
            self.queue_depth.labels(template=template).set(depth)

    def set_template_pools(self, pools: list[TemplatePool]) -> None:
        # A template gone from the answer (archived and empty) stops being reported.
        self.instances.clear()
        self.target_idle.clear()
        for pool in pools:
            for status, count in pool.counts.items():
                self.instances.labels(status=status, template=pool.template_id).set(count)
            self.target_idle.labels(template=pool.template_id).set(pool.target)

    def set_platforms(self, views: list[PlatformView]) -> None:
        # A platform no longer configured stops being reported rather than keeping its last value.
        for gauge in (self.platform_in_use, self.platform_capacity, self.platform_backing_off):
            gauge.clear()
        for view in views:
            self.platform_in_use.labels(platform=view.name).set(view.in_use)
            capacity = math.inf if view.capacity is None else view.capacity
            self.platform_capacity.labels(platform=view.name).set(capacity)
            self.platform_backing_off.labels(platform=view.name).set(int(view.health == "backing off"))

    def render(self) -> bytes:
        return generate_latest(self.registry)
