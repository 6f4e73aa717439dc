from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from pool.templates.schemas import TemplatePool
from shared.schemas import PlatformView
from shared.validation import InputModel


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, from_attributes=True)


class Instance(_Camel):
    """An instance as operators see it: never its gateway token."""

    id: str
    name: str
    url: str | None
    status: str
    agent_name: str | None
    conversation_id: str | None
    invite_url: str | None
    join_url: str | None
    template_id: str
    template_version: int
    owner_id: str | None
    parent_instance: str | None
    deploy_status: str | None
    failed_probes: int
    last_error: str | None
    created_at: datetime
    claimed_at: datetime | None
    status_changed_at: datetime
    last_probe_at: datetime | None
    last_healthy_at: datetime | None


class Agent(_Camel):
    id: str
    name: str
    url: str | None
    status: str
    agent_name: str | None
    instructions: str | None
    conversation_id: str | None
    invite_url: str | None
    join_url: str | None
    profile_image: str | None
    metadata: dict[str, Any] | None = Field(validation_alias="metadata_")
    template_id: str | None
    template_version: int | None = None
    owner_id: str | None = None
    # The agent this one was cloned from (DESIGN.md §11).
    parent_instance: str | None = None
    template_synced_at: datetime | None = None
    claimed_at: datetime | None


class LoopState(_Camel):
    leader_id: str | None = None
    leader_since: datetime | None = None
    last_tick_at: datetime | None = None
    last_tick_duration_ms: int | None = None
    last_summary: dict[str, Any] | None = None
    last_error: str | None = None
    healthy: bool | None = None
    consecutive_create_failures: int | None = None
    backoff_until: datetime | None = None
    last_create_error: str | None = None


class PoolStatus(_Camel):
    counts: dict[str, int]
    target: int
    max_total: int
    instances: list[Instance]
    loop: LoopState
    # Services' platforms as the tick last read them (DESIGN.md §9), and when services saw them.
    platforms: list[PlatformView] = []
    platforms_observed_at: datetime | None = None
    # Each template's pool (DESIGN.md §11): its target, queue, and instances by status and version.
    templates: list[TemplatePool] = []


class CountBody(_Camel, InputModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    count: Annotated[int, Field(ge=1, le=100)]


class Replenished(_Camel):
    requested: int
    created: list[str]


class Drained(_Camel):
    requested: int
    drained: list[str]
    failed: list[str]


class Removed(_Camel):
    instance_id: str
    removed: bool


class PoolInfo(_Camel):
    environment: str
    version: str


class Cloned(_Camel):
    """A clone's answer: the new agent, where it came from, and the state it was given."""

    instance_id: str
    parent_instance: str
    template_id: str
    template_version: int
    agent_name: str
    conversation_id: str
    invite_url: str
    state_bytes: int
    state_sha256: str


class Upgraded(_Camel):
    """A claimed agent rolled to its template's current version through services' redeploy."""

    instance_id: str
    template_id: str
    from_version: int
    to_version: int
    image: str | None = Field(description="The version's image; null: the deployment's (redeployed as it is)")
    deploy_status: str | None
