from __future__ import annotations

from dataclasses import dataclass, field

from pool.config import Settings
from pool.status import Rules


@dataclass(frozen=True)
class TickSettings:
    """What the loop needs from `pool.config.Settings`, plus knobs tests turn down."""

    fleet: str = "default"
    min_idle: int = 3
    max_total: int = 50
    create_concurrency: int = 4
    tools: tuple[str, ...] = ()
    interval_seconds: float = 30.0
    starting_probe_interval_seconds: float = 2.0
    rules: Rules = field(default_factory=Rules)
    orphan_grace_seconds: float = 600.0
    # A `creating` row this old belongs to a create that died with its process.
    creating_timeout_seconds: float = 600.0
    # A claim `pending` this long lost its claimant (killed mid-provision): the tick releases it,
    # whether or not the pool ever looks empty. `Settings.claim_stale_seconds`.
    claim_stale_seconds: float = 105.0
    probe_concurrency: int = 20
    probe_timeout_seconds: float = 5.0
    # Idle instances' /convos/status on a rotation (pool.tick.runtimes); 0 asks all every tick.
    idle_runtime_check_seconds: float = 600.0
    idle_runtime_checks_per_tick: int = 200
    # One attempt, never retried (a retry repeats the whole observation, Railway calls included);
    # longer than services' SERVICES_STATUS_DEADLINE_SECONDS.
    status_batch_timeout_seconds: float = 60.0
    # Create backoff: POOL_CREATE_BACKOFF_* (pool.config.Settings).
    backoff_after_failures: int = 3
    backoff_base_seconds: float = 5.0
    backoff_max_seconds: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: object) -> TickSettings:
        values: dict[str, object] = {
            "min_idle": settings.min_idle,
            "max_total": settings.max_total,
            "create_concurrency": settings.create_concurrency,
            "tools": tuple(settings.tools),
            "interval_seconds": settings.tick_interval_seconds,
            "starting_probe_interval_seconds": settings.starting_probe_interval_seconds,
            "rules": Rules(
                stuck_timeout_seconds=settings.stuck_timeout_seconds,
                death_threshold=settings.failed_probes_for_death,
            ),
            "orphan_grace_seconds": settings.orphan_grace_seconds,
            "status_batch_timeout_seconds": settings.status_batch_timeout_seconds,
            "idle_runtime_check_seconds": settings.idle_runtime_check_seconds,
            "creating_timeout_seconds": settings.stuck_timeout_seconds,
            "claim_stale_seconds": settings.claim_stale_seconds,
            "backoff_after_failures": settings.create_backoff_after_failures,
            "backoff_base_seconds": settings.create_backoff_base_seconds,
            "backoff_max_seconds": settings.create_backoff_max_seconds,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
