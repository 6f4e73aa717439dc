from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "dev-services-key", "dev-encryption-key"}


class PlatformConfig(BaseModel):
    """One platform of `SERVICES_PLATFORMS` (DESIGN.md §9). `settings` override the provider's own
    settings by field name (each provider checks its own; docs/operating.md lists them)."""

    model_config = ConfigDict(extra="forbid")

    # Recorded on every instance placed there (`instance_infra.platform`): renaming one strands them.
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,39}$")
    provider: str
    settings: dict[str, Any] = {}
    # Lower goes first; equal priorities keep the order of the list.
    priority: int = 0
    # Live instances it may hold (creates in flight count); null: no cap; 0: drained.
    capacity: int | None = Field(None, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVICES_", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8001
    # What instances are told to call back on (INSTANCE env SERVICES_URL); defaults to host:port.
    public_url: str = ""
    pool_url: str = "http://127.0.0.1:8000"
    api_key: str = "dev-services-key"
    encryption_key: str = "dev-encryption-key"
    log_level: str = "INFO"
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest request body accepted (413 above it, before anything reads it); the largest "
        "legitimate ones (a create's or configure's variables, a pooled secret) are a few KB.",
    )
    api_docs: bool | None = Field(
        None,
        description="Serve `/docs`, `/redoc` and `/openapi.json`. Unset: served except in production.",
    )

    # A name in services.platforms.registry.PLATFORMS; checked at start-up.
    platform: str = "local"
    platforms: list[PlatformConfig] = Field(
        [],
        description="The platforms creates are placed on, as JSON (DESIGN.md §9): a list of `{name, "
        "provider, settings, priority, capacity}`, lower priority first, `capacity` null for no cap and 0 "
        "to drain. Unset: one platform named after `SERVICES_PLATFORM`, with no cap.",
    )
    placement_backoff_after: int = Field(
        3, ge=1, description="Consecutive failed creates on a platform before placement skips it for a while."
    )
    placement_backoff_seconds: float = Field(
        30.0,
        gt=0,
        description="First pause of a failing platform; it doubles with each further failure, up to "
        '`SERVICES_PLACEMENT_BACKOFF_MAX_SECONDS`. An "at capacity" answer starts it at once.',
    )
    placement_backoff_max_seconds: float = Field(
        600.0, gt=0, description="Longest pause of a failing platform."
    )
    # Image a container platform deploys for each instance; the local provider runs `python -m runtime`.
    runtime_image: str = "ghcr.io/warmpool/runtime:latest"
    # Tools every new instance gets unless the create request names its own.
    default_tools: list[str] = []

    # The scoped proxy (services/proxy/).
    proxy_credits_increment: float = Field(
        20.0, gt=0, description="USD an instance's credits top-up adds to its OpenRouter key's limit."
    )
    proxy_credits_cap: float = Field(
        100.0,
        gt=0,
        description="Highest limit (USD) a credits top-up reaches; a top-up at the cap answers 409.",
    )
    agentmail_webhook_secret: str = Field(
        "",
        description="The AgentMail (Svix) endpoint secret, `whsec_...`, that signs "
        "`POST /webhooks/agentmail`; empty refuses every delivery (503).",
    )
    telnyx_webhook_public_key: str = Field(
        "",
        description="The Telnyx account's Ed25519 public key (base64, from the portal) that signs "
        "`POST /webhooks/telnyx`; empty refuses every delivery (503).",
    )
    webhook_tolerance_seconds: float = Field(
        300.0, gt=0, description="A webhook whose signed timestamp is further off than this is refused."
    )
    events_pool_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="Timeout of services' call asking the pool to observe an instance a platform's deploy "
        "event named (`POST /api/pool/internal/observe/{id}`).",
    )
    events_catchup_seconds: float = Field(
        900.0,
        ge=0,
        description="At start-up, deploy-event deliveries the platform lists from this far back are relayed "
        "to the pool once (a catch-up after downtime); 0: none (the pool's tick still sees everything).",
    )
    notify_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="Timeout of the delivery of an inbound mail/SMS to the runtime's `/convos/notify`.",
    )
    proxy_attachment_max_bytes: int = Field(
        5_000_000,
        ge=0,
        description="Largest mail attachment the proxy inlines (base64) into a message it reads; larger "
        "ones come back with `inline_error`.",
    )

    probe_concurrency: int = 40
    probe_concurrency_max: int = Field(
        400,
        ge=1,
        description="Most health probes in flight at once during `/status/batch`; between "
        "`SERVICES_PROBE_CONCURRENCY` and this, one more per 20 instances.",
    )
    probe_timeout_seconds: float = 2.0
    status_deadline_seconds: float = Field(
        30.0,
        gt=0,
        description="Deadline of one `/status/batch`: instances not probed by then are reported "
        "unprobed (no observation). Keep it below the pool's `POOL_STATUS_BATCH_TIMEOUT_SECONDS`.",
    )

    # local provider
    local_data_dir: str = ".data/local-instances"
    # Extra env for every local runtime process (test knobs such as RUNTIME_STARTUP_DELAY).
    local_runtime_env: dict[str, str] = {}
    # SIGTERM, then SIGKILL after this long.
    local_stop_grace_seconds: float = 5.0

    # The asynchronous create (services/instances/worker.py).
    create_concurrency: int = Field(
        4,
        ge=1,
        description="Instance creates services' workers run at once; the rest wait in arrival order.",
    )
    create_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="How often an idle create worker looks for work it was not woken for (a create "
        "recorded by another replica, a create whose worker died).",
    )
    create_lease_seconds: float = Field(
        60.0,
        ge=5,
        description="A create worker renews its hold on the create it makes every third of this; a create "
        "not renewed for this long belongs to a worker that died and is taken again (rolled back, redone).",
    )
    create_max_attempts: int = Field(
        3, ge=1, description="Takes of one create (after workers died mid-way) before it is marked failed."
    )

    sweep_interval_seconds: float = 300.0
    sweep_grace_seconds: float = 600.0

    @field_validator("sweep_grace_seconds")
    @classmethod
    def _sweep_grace_positive(cls, value: float) -> float:
        # A resource younger than the grace may be a provision or create in flight (made at the
        # provider, not recorded yet): with no grace the sweep would remove live resources.
        if not value > 0:
            raise ValueError(
                "SERVICES_SWEEP_GRACE_SECONDS must be greater than 0 (age before the sweep removes an "
                "orphan or finishes a stuck ledger row); the default is 600"
            )
        return value

    @field_validator("platforms")
    @classmethod
    def _unique_platform_names(cls, value: list[PlatformConfig]) -> list[PlatformConfig]:
        names = [platform.name for platform in value]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"SERVICES_PLATFORMS names each platform once; repeated: {', '.join(twice)}")
        return value

    @property
    def platform_configs(self) -> list[PlatformConfig]:
        """The platforms in placement order. Without `SERVICES_PLATFORMS`, today's single platform,
        named after its provider so the rows recorded before placement existed map onto it."""
        listed = self.platforms or [PlatformConfig(name=self.platform, provider=self.platform)]
        return sorted(listed, key=lambda platform: platform.priority)

    @model_validator(mode="after")
    def _reject_placeholders_in_production(self) -> Settings:
        if self.environment == "production":
            for name in ("api_key", "encryption_key"):
                if getattr(self, name) in PLACEHOLDER_SECRETS:
                    raise ValueError(f"SERVICES_{name.upper()} must be set to a real secret in production")
        return self

    @property
    def callback_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
