"""The pool's tables.

`instances` holds one row per instance the pool owns. A row is inserted as `creating` before
services is asked to create the instance (so in-flight creates count against the target), and
becomes `starting` once services answered. Every status write is conditional on the status it read.

`claims` records each claim (`pending → succeeded | failed`, DESIGN.md §3 step 2; a claim that
waits for an instance starts `queued` and ends `pending`, `failed` on its deadline or `cancelled`,
DESIGN.md §10) and dedupes them: an `idempotency_key` unique per `caller`, and a partial unique
index allowing one active claim (`queued`, `pending`, or `succeeded` while its agent still holds
the join) per `join_url`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from pool import status as status_rules
from shared.db import make_metadata

# One list of statuses: the transition rules own it, the CHECK constraint and counts reuse it.
STATUSES: tuple[str, ...] = status_rules.STATUSES
CLAIM_STATUSES = ("queued", "pending", "succeeded", "failed", "cancelled")
TEMPLATE_VISIBILITIES = ("private", "public")
ROLLOUT_STRATEGIES = ("on-replenish", "recreate", "canary")
# Which claim holds its joinUrl (the partial unique index); pool.claims.db's statements say the same.
HOLDS_JOIN_URL = (
    "join_url IS NOT NULL AND status IN ('queued', 'pending', 'succeeded') AND join_released_at IS NULL"
)


def _in_list(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = make_metadata()


class Instance(Base):
    __tablename__ = "instances"
    __table_args__ = (
        CheckConstraint(_in_list("status", STATUSES), name="status"),
        Index("ix_instances_status_created_at", "status", "created_at"),
        # What a claim picks: its template's idle instances, newest version first (pool.claims.db).
        Index(
            "ix_instances_idle_pick",
            "template_id",
            text("template_version DESC"),
            "created_at",
            postgresql_where=text("status = 'idle'"),
        ),
        Index("ix_instances_owner_id", "owner_id", postgresql_where=text("owner_id IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    url: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    agent_name: Mapped[str | None] = mapped_column(Text)
    conversation_id: Mapped[str | None] = mapped_column(Text)
    invite_url: Mapped[str | None] = mapped_column(Text)
    join_url: Mapped[str | None] = mapped_column(Text)
    instructions: Mapped[str | None] = mapped_column(Text)
    profile_image: Mapped[str | None] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONB)
    # The template version it was created for (DESIGN.md §11); `default` v1 is the deployment's settings.
    template_id: Mapped[str] = mapped_column(Text, server_default="default")
    template_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # When the template's instructions were last pushed to its agent (sync).
    template_synced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    owner_id: Mapped[str | None] = mapped_column(Text)
    # The instance this agent was cloned from.
    parent_instance: Mapped[str | None] = mapped_column(String(12))
    # SecretBox ciphertext (POOL_ENCRYPTION_KEY); services hands the token out once, at create.
    gateway_token_enc: Mapped[str | None] = mapped_column(Text)
    failed_probes: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    last_probe_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_healthy_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When a tick last asked its runtime's /convos/status while idle (pool.tick.runtimes' rotation).
    runtime_checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The platform services placed it on, as the status batch reports it (None until placed).
    platform: Mapped[str | None] = mapped_column(Text)
    deploy_status: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status_changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # When the instance first became idle: with created_at (its create was requested), one sample
    # of the refill time the claim queue's ETA is built from (pool.claims.eta).
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Claim(Base):
    __tablename__ = "claims"
    __table_args__ = (
        CheckConstraint(_in_list("status", CLAIM_STATUSES), name="status"),
        UniqueConstraint("caller", "idempotency_key", name="uq_claims_caller_idempotency_key"),
        Index("uq_claims_active_join_url", "join_url", unique=True, postgresql_where=text(HOLDS_JOIN_URL)),
        Index("ix_claims_instance_id", "instance_id"),
        # The tick's two scans: pending claims past the stale bound, and records past the retention.
        Index("ix_claims_pending_created_at", "created_at", postgresql_where=text("status = 'pending'")),
        Index("ix_claims_created_at", "created_at"),
        # The per-owner quota counts an owner's claims in flight.
        Index(
            "ix_claims_owner_in_flight",
            "owner_id",
            postgresql_where=text("owner_id IS NOT NULL AND status IN ('queued', 'pending')"),
        ),
        # The queue, in the order it is served (pool.claims.queue_db).
        Index(
            "ix_claims_queue",
            "template",
            text("priority DESC"),
            "queue_seq",
            postgresql_where=text("status = 'queued'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # Who asked (pool.auth.ClaimCaller): an Idempotency-Key means something only to its caller.
    caller: Mapped[str] = mapped_column(Text)
    idempotency_key: Mapped[str | None] = mapped_column(Text)
    # sha256 of the request body, so a key reused for a different request is refused.
    request_hash: Mapped[str] = mapped_column(Text)
    join_url: Mapped[str | None] = mapped_column(Text)
    instance_id: Mapped[str | None] = mapped_column(String(12))
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    # The recorded outcome, replayed to every retry: the claim answer when `succeeded`,
    # `{"error", "detail"}` (a 502) when `failed`.
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Set once a succeeded claim's agent no longer holds its joinUrl (killed, dismissed, refused):
    # the outcome stays as recorded, and the joinUrl may be claimed again.
    # Where the claim came from, as its caller says ("landing" for the original's landing site).
    source: Mapped[str | None] = mapped_column(Text)
    join_released_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The queue (DESIGN.md §10): one per template, served by priority (higher first), then in
    # arrival order (queue_seq). A claim keeps its place when a failed provision puts it back.
    template: Mapped[str] = mapped_column(Text, server_default="default")
    priority: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Whose agent this claim makes (the per-owner quota, DESIGN.md §11).
    owner_id: Mapped[str | None] = mapped_column(Text)
    queue_seq: Mapped[int] = mapped_column(BigInteger, Identity(always=False))
    # A queued claim's body, for whichever replica assigns it an instance to provision it.
    request: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # Provisions that failed after the queue assigned it: one puts it back in its place, two fail it.
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    deadline_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    assigned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The ETA the caller was given at enqueue (the ETA-error metric compares it with the wait).
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class TickState(Base):
    """Health of the reconcile loop, one row per fleet, so any replica can report it."""

    __tablename__ = "tick_state"

    fleet: Mapped[str] = mapped_column(Text, primary_key=True)
    leader_id: Mapped[str | None] = mapped_column(Text)
    leader_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_tick_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_tick_duration_ms: Mapped[int | None] = mapped_column(Integer)
    last_summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    last_error: Mapped[str | None] = mapped_column(Text)
    consecutive_create_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    backoff_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_create_error: Mapped[str | None] = mapped_column(Text)
    # Services' platforms as the tick last read them (`GET /platforms`: shared.schemas.PlatformView
    # each), and when services observed them; null until a tick read them.
    platforms: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONB)
    platforms_observed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class LoginThrottle(Base):
    """The dashboard login's throttle, one row per lane (pool/dashboard/throttle.py), in the
    database so every pool process shares it."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(Text, primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InstanceEvent(Base):
    """What happened to or through one instance, newest last: proxied calls (issue 16) and, later, its
    lifecycle. `summary` names what was done (a route, a status, counts), never a message body or a
    secret. No foreign key: the log of a destroyed instance outlives its row until retention prunes it."""

    __tablename__ = "instance_events"
    __table_args__ = (
        Index("ix_instance_events_instance_at", "instance_id", "at"),
        Index("ix_instance_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(12))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # A dotted name: `proxy.email.send`, `callback.self_destruct`, ...
    kind: Mapped[str] = mapped_column(Text)
    # Who caused it: `instance` (its own token), `operator`, `pool`.
    actor: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class Template(Base):
    """What agents are made from (DESIGN.md §11): a name and an owner over immutable versions. The
    `default` template stands for the deployment's own settings (POOL_TOOLS, services' image); the
    claim queue's `claims.template` key names it."""

    __tablename__ = "templates"
    __table_args__ = (
        CheckConstraint(_in_list("visibility", TEMPLATE_VISIBILITIES), name="visibility"),
        # A slug names one live template per owner; an archived one frees its slug.
        Index(
            "uq_templates_owner_slug_live",
            "owner",
            "slug",
            unique=True,
            postgresql_where=text("archived_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    slug: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(Text, server_default="private")
    forked_from: Mapped[str | None] = mapped_column(Text, ForeignKey("templates.id"))
    forked_from_version: Mapped[int | None] = mapped_column(Integer)
    current_version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    # The current rollout's progress (pool.templates.rollout), shown in the status API; null: none.
    rollout_state: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # What the tick keeps between ticks to size the pool (pool.tick.sizing), with the target it set.
    sizing_state: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class TemplateVersion(Base):
    """One version of a template, never changed once written (a trigger refuses UPDATE). A null
    image or tools means the deployment's settings, as before templates existed."""

    __tablename__ = "template_versions"
    __table_args__ = (
        CheckConstraint(_in_list("rollout_strategy", ROLLOUT_STRATEGIES), name="rollout_strategy"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint("min_idle IS NULL OR max_idle IS NULL OR min_idle <= max_idle", name="idle_range"),
        CheckConstraint("sizing IS NULL OR sizing IN ('fixed', 'demand')", name="sizing"),
    )

    template_id: Mapped[str] = mapped_column(
        Text, ForeignKey("templates.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    image: Mapped[str | None] = mapped_column(Text)
    tools: Mapped[list[str] | None] = mapped_column(JSONB)
    agent_name: Mapped[str | None] = mapped_column(Text)
    instructions: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    env: Mapped[dict[str, str]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    resources: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # The pool policy (DESIGN.md §12); null: the deployment's POOL_MIN_IDLE / POOL_MAX_TOTAL.
    min_idle: Mapped[int | None] = mapped_column(Integer)
    max_idle: Mapped[int | None] = mapped_column(Integer)
    # How the idle target is chosen (DESIGN.md §12; pool.sizing): `fixed` or `demand`; null: POOL_SIZING.
    sizing: Mapped[str | None] = mapped_column(Text)
    # Windows that raise the floor (`weekdays 09-18 >= 10`), the idle-hours budget, recycling age.
    schedules: Mapped[list[str] | None] = mapped_column(JSONB)
    idle_hours_per_day: Mapped[float | None] = mapped_column(Float)
    max_idle_age_seconds: Mapped[float | None] = mapped_column(Float)
    # Live agents one owner may have of this template; null: the deployment's POOL_OWNER_MAX_AGENTS.
    owner_agent_limit: Mapped[int | None] = mapped_column(Integer)
    rollout_strategy: Mapped[str] = mapped_column(Text, server_default="on-replenish")
    # The strategy's parameters: `{"floor": n}` for recreate, `{"count", "windowSeconds"}` for canary.
    rollout: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TemplateSample(Base):
    """One template's pool once a minute, written by the tick leader (pool/samples/tick.py) and
    drawn by the dashboard's pictures; pruned past POOL_SAMPLES_RETENTION_HOURS."""

    __tablename__ = "template_samples"

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    template_id: Mapped[str] = mapped_column(Text, primary_key=True)
    idle: Mapped[int] = mapped_column(Integer)
    # creating + starting: instances on their way to idle.
    starting: Mapped[int] = mapped_column(Integer)
    # claiming + claimed + pending_acceptance: instances an agent holds (or is being given).
    claimed: Mapped[int] = mapped_column(Integer)
    queued: Mapped[int] = mapped_column(Integer)
    target: Mapped[int] = mapped_column(Integer)
    # Why the target is what it is (the status API's targetReason), when it gives one.
    target_reason: Mapped[str | None] = mapped_column(Text)
    # Create requested → idle of the instances that became idle in the minute before, in seconds.
    refill_p50_seconds: Mapped[float | None] = mapped_column(Float)
    refill_max_seconds: Mapped[float | None] = mapped_column(Float)


class ClaimSample(Base):
    """The claims every replica answered in one minute (pool/samples/recorder.py adds its counts
    here every few seconds): outcomes, and latencies as a histogram over
    `pool.samples.latency.BOUNDS`, so p50/p99 merge across replicas and minutes."""

    __tablename__ = "claim_samples"

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    # Answered at once from an idle instance.
    hits: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Found no idle instance: queued (answered later) or refused empty.
    misses: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # Provisioning failed, rejected, or replayed a duplicate's answer: neither hit nor miss.
    other: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    latency_buckets: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
