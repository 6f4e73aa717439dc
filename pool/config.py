from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "dev-pool-key", "dev-services-key", "dev-encryption-key"}

# A claim provisions at most this many instances (the reserved one, then one other) before it fails.
CLAIM_MAX_INSTANCES = 2


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POOL_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(
        1,
        ge=1,
        description="Pool server processes (uvicorn workers) on this host. Claims are safe on any of them "
        "(SKIP LOCKED) and one leader ticks (advisory lock); each holds its own database connections.",
    )

    # Operators, the dashboard's server and the public site's server present this as a bearer token.
    api_key: str = "dev-pool-key"
    # A second way into the dashboard (never the API); empty means only the admin key logs in.
    admin_password: str = ""
    services_url: str = "http://127.0.0.1:8001"
    services_api_key: str = "dev-services-key"
    services_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Timeout of each call the pool makes to services (create and destroy an instance); "
        "the tick's status batch has its own (`POOL_STATUS_BATCH_TIMEOUT_SECONDS`).",
    )
    # Encrypts each instance's gateway token at rest (SecretBox passphrase).
    encryption_key: str = "dev-encryption-key"
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body accepted (413 above it, before anything reads it). The largest "
        "legitimate one, a claim at every field's bound, is under 700 KB even written as `\\u` escapes.",
    )
    api_docs: bool | None = Field(
        None,
        description="Serve `/docs`, `/redoc` and `/openapi.json`. Unset: served except in production.",
    )
    login_delay_max_seconds: float = Field(
        4.0,
        gt=0,
        description="Dashboard login throttle: after wrong secrets, attempts take turns up to this far apart "
        "(doubling from 1/16 of it); a browser that logged in before has a lane of its own, so a right "
        "secret gets in within this even while someone guesses.",
    )

    min_idle: int = Field(3, ge=0)
    max_total: int = Field(50, ge=1)
    sizing: Literal["fixed", "demand"] = Field(
        "fixed",
        description="How a template whose pool policy leaves `sizing` out chooses its idle target: `fixed` "
        "(its minIdle, else `POOL_MIN_IDLE`, raised by its schedules) or `demand` (sized from the claim "
        "rate and refill time the pool measures; DESIGN.md §12).",
    )
    sizing_hit_target: float = Field(
        0.99, gt=0, lt=1, description="Demand sizing: the share of claims that should find an idle instance."
    )
    sizing_margin: int = Field(
        0, ge=0, description="Demand sizing: idle instances kept on top of what demand asks."
    )
    sizing_peak_half_life_seconds: float = Field(
        7200.0,
        gt=0,
        description="Demand sizing: how long a past burst is remembered (its claim rate halves every this "
        "many seconds). Long keeps instances ready for bursts that recur; short forgets a one-off spike "
        "sooner (a launch known ahead is better served by a schedule).",
    )
    scale_down_cooldown_seconds: float = Field(
        900.0,
        gt=0,
        description="A template whose ready and coming instances stay above its target this long has its "
        "oldest idle ones drained down to it (never while claims are queued).",
    )
    create_concurrency: int = Field(4, ge=1)
    tools: list[str] | None = Field(
        None,
        description="Tools each new instance gets; unset: services' `SERVICES_DEFAULT_TOOLS`, `[]`: none.",
    )

    tick_enabled: bool = True
    tick_interval_seconds: float = Field(30.0, gt=0)
    starting_probe_interval_seconds: float = Field(2.0, gt=0)
    stuck_timeout_seconds: float = Field(600.0, gt=0)
    event_observe_spacing_seconds: float = Field(
        2.0,
        ge=0,
        description="Least time between two observations of one instance asked for by platform events "
        "(`POST /api/pool/internal/observe/{id}`): a flood of events, forged ones included, observes an "
        "instance at most this often; the first event of a quiet instance is observed at once.",
    )
    event_observe_concurrency: int = Field(
        8,
        ge=1,
        description="Instances observed at once because of platform events (the rest wait their turn).",
    )
    failed_probes_for_death: int = Field(3, ge=1)
    orphan_grace_seconds: float = 600.0
    status_batch_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Timeout of the tick's one `/status/batch` call to services (never retried: the next "
        "tick is the retry). Keep it above `SERVICES_STATUS_DEADLINE_SECONDS`.",
    )
    idle_runtime_check_seconds: float = Field(
        600.0,
        ge=0,
        description="Each idle instance's `/convos/status` (is it still clean?) is asked at most this often, "
        "on a rotation of at most `POOL_IDLE_RUNTIME_CHECKS_PER_TICK` per tick; 0 asks every idle instance "
        "every tick.",
    )
    idle_runtime_checks_per_tick: int = Field(
        200,
        ge=1,
        description="Most idle instances whose `/convos/status` one tick asks (the rotation above).",
    )
    observe_rotation_seconds: float = Field(
        300.0,
        ge=0,
        description="The tick's safety net: each `idle`, `claimed`, `pending_acceptance` or `sleeping` "
        "instance is observed (health probe, the platform's last word) at least once per this period "
        "plus two ticks, on a rotation of the least recently observed, ceil(count × tick interval ÷ "
        "period) per tick. Instances that can have changed (starting, failing, crashed, marked by an "
        "event or a listing) are observed every tick. 0 observes every instance every tick.",
    )
    observe_floor_per_tick: int = Field(
        100,
        ge=0,
        description="Each tick observes at least this many of the steady instances of the rotation above "
        "(all of a fleet this small), the platform asked about them too (in batches of the platform's size); "
        "the rest of a larger rotation is probed for health only.",
    )
    listing_interval_seconds: float = Field(
        300.0,
        gt=0,
        description="The platform's safety net: services lists every platform in full at most this "
        "often (deploy events are the fast path); what changed is observed at the next tick.",
    )
    listing_calls_per_hour: int = Field(
        2500,
        ge=1,
        description="Most platform API calls per hour the full listings may spend: the listing "
        "interval stretches to (calls the last listing cost) × 3600 ÷ this.",
    )
    probe_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="Timeout of each call the tick and the starting prober make to an instance "
        "(`/pool/health`, `/convos/status`).",
    )
    probe_concurrency: int = Field(
        20, ge=1, description="Calls to instances the tick and the starting prober make at once."
    )
    # A platform refusing every create (quota, bad token) would otherwise be asked again each tick.
    create_backoff_after_failures: int = Field(
        3,
        ge=1,
        description="Consecutive failed instance creations after which the loop stops creating for a while.",
    )
    create_backoff_base_seconds: float = Field(
        5.0,
        gt=0,
        description="First pause after `POOL_CREATE_BACKOFF_AFTER_FAILURES` failures; doubles with each "
        "further failure. Any successful create ends the pause.",
    )
    create_backoff_max_seconds: float = Field(
        300.0, gt=0, description="Longest pause between creation attempts while creations keep failing."
    )

    claim_provision_timeout_seconds: float = Field(30.0, gt=0)
    claim_wait_max_seconds: int = Field(30, ge=0)
    claim_queue_timeout_seconds: int = Field(
        600,
        ge=1,
        description="How long a claim made with `POST /api/pool/claims` waits in the queue when its body "
        "gives no `timeoutSeconds`; past it the claim fails with the reason.",
    )
    claim_queue_timeout_max_seconds: int = Field(
        3600,
        ge=1,
        description="Longest `timeoutSeconds` a `POST /api/pool/claims` may ask for (400 above it).",
    )
    # How long a request that duplicates an in-flight claim waits for the first one's answer.
    claim_duplicate_wait_seconds: float = Field(45.0, gt=0)
    claim_stale_margin_seconds: float = Field(
        30.0,
        ge=0,
        description="Slack added to a claim's worst case (what no timeout covers: its database statements "
        "waiting for a connection or a lock, a loaded event loop) before the tick ends a `pending` claim "
        "as abandoned. The bound is 2 × 3 × `POOL_CLAIM_PROVISION_TIMEOUT_SECONDS` + "
        "`POOL_CLAIM_DUPLICATE_WAIT_SECONDS` + this.",
    )
    claim_retention_hours: float = Field(
        72.0,
        gt=0,
        description="Ended claim records (and the Idempotency-Keys they answer) are kept this long, then "
        "the tick deletes them; a record whose agent still holds its joinUrl is kept.",
    )

    clone_max_state_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest agent state (the exported archive, in bytes) that "
        "`POST /api/pool/instances/{id}/clone` moves; past it the clone answers 413 and nothing changes. "
        "The reference runtime has its own cap, `RUNTIME_STATE_MAX_BYTES`.",
    )
    # Template sync (DESIGN.md §11): pushing a template's instructions to its claimed agents.
    sync_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Timeout of each call a template sync makes to an agent (`/pool/health` for its "
        "capabilities, then `/convos/instructions`); an agent that does not answer in time is reported "
        "failed and the others go on.",
    )
    sync_concurrency: int = Field(10, ge=1, le=200, description="Agents one template sync calls at once.")

    owner_max_agents: int | None = Field(
        None,
        ge=0,
        description="Live agents one owner (a claim's `ownerId`) may have at once, across templates: "
        "claimed, pending acceptance, and claims queued or in flight. Past it a claim answers 429 and "
        "nothing is provisioned. Unset or 0: no limit. A template's `ownerAgentLimit` caps the owner's "
        "agents of that template as well. Claims without `ownerId` are not counted.",
    )

    # The service proxy and the instance callbacks (pool/callbacks/).
    proxy_send_limit: int = Field(
        30,
        ge=1,
        description="Mails plus SMS one instance may send through the proxy per "
        "`POOL_PROXY_SEND_WINDOW_SECONDS`; past it a send answers 429 with `Retry-After`. Counted in the "
        "pool database (the instance event log), so the limit holds across replicas.",
    )
    proxy_send_window_seconds: float = Field(
        3600.0, gt=0, description="The window of `POOL_PROXY_SEND_LIMIT`, in seconds."
    )
    instance_events_retention_hours: float = Field(
        168.0,
        gt=0,
        description="Instance event log entries are kept this long, then the tick leader deletes them.",
    )
    samples_retention_hours: float = Field(
        48.0,
        gt=0,
        description="The dashboard's minute samples (pool and claims, for its pictures) are kept this long.",
    )

    @property
    def claim_stale_seconds(self) -> float:
        """A claim `pending` this long lost its claimant (its pool died mid-provision); the tick
        ends it. The bound is a live claim's worst case, so a live one is never ended: for each
        instance it may try, a provision, then (after a failure) a reset and a status check, each
        up to the provision timeout; plus a duplicate's wait for its answer; plus a margin."""
        calls_per_instance = 3 * self.claim_provision_timeout_seconds
        return (
            CLAIM_MAX_INSTANCES * calls_per_instance
            + self.claim_duplicate_wait_seconds
            + self.claim_stale_margin_seconds
        )

    @field_validator("orphan_grace_seconds")
    @classmethod
    def _orphan_grace_positive(cls, value: float) -> float:
        # An instance services knows and the pool does not may be one the pool is still recording
        # (or services still creating): with no grace the tick would destroy it the moment it exists.
        if not value > 0:
            raise ValueError(
                "POOL_ORPHAN_GRACE_SECONDS must be greater than 0 (seconds an instance services knows and "
                "the pool does not is left alone before it is destroyed); the default is 600"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.environment == "production":
            for name in ("api_key", "services_api_key", "encryption_key"):
                if getattr(self, name) in PLACEHOLDER_SECRETS:
                    raise ValueError(f"POOL_{name.upper()} must be set to a real secret in production")
        if self.claim_queue_timeout_max_seconds < self.claim_queue_timeout_seconds:
            raise ValueError(
                "POOL_CLAIM_QUEUE_TIMEOUT_MAX_SECONDS must be at least POOL_CLAIM_QUEUE_TIMEOUT_SECONDS"
            )
        if self.create_backoff_max_seconds < self.create_backoff_base_seconds:
            raise ValueError(
                "POOL_CREATE_BACKOFF_MAX_SECONDS must be at least POOL_CREATE_BACKOFF_BASE_SECONDS"
            )
        return self
