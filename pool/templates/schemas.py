"""Templates on the wire. A version's fields are one `TemplateSpec`; every field a request may
leave out means "as the deployment's settings say" (null image, null tools) or "nothing" (env)."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel

from pool.sizing.schedule import parse_all
from shared.validation import InputModel, JsonObject

DEFAULT_TEMPLATE_ID = "default"
DEFAULT_OWNER = "operator"
TEMPLATE_ID_PATTERN = r"^(default|tpl_[0-9a-z]{12})$"
MAX_ENV_ENTRIES = 50
MAX_RESOURCES_BYTES = 2000

# Set by services on every instance (services/instances/create.py) or by its tools: a template
# setting one would be overwritten or would shadow what the instance must be told.
RESERVED_ENV = frozenset(
    {
        "INSTANCE_ID",
        "GATEWAY_TOKEN",
        "INSTANCE_SERVICES_TOKEN",
        "POOL_URL",
        "SERVICES_URL",
        "PORT",
        "RUNTIME_DATA_DIR",
        "OPENROUTER_API_KEY",
        "AGENTMAIL_INBOX",
        "TELNYX_PHONE_NUMBER",
    }
)
# Template env is stored in plain text and shown to operators: secrets belong to the tools'
# ledger (encrypted), so names and values that look like one are refused (`env_problem`).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|AUTH|COOKIE|SESSION")
SECRET_VALUE = re.compile(r"^(sk[-_]|pool_sk_|ghp_|gho_|github_pat_|xox[abp]-|AKIA|-----BEGIN)")
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")


def env_problem(env: dict[str, str]) -> str | None:
    """Why `env` cannot be a template's, naming the variable and never its value. Checked by the
    service rather than a validator: a 422 echoes its input, and a refused secret must not be."""
    for name, value in env.items():
        if not ENV_NAME.match(name):
            return f"env name {name!r} must be upper-case letters, digits and _ (at most 64)"
        if name in RESERVED_ENV:
            return f"env {name} is set by the pool's services on every instance"
        if SECRET_NAME.search(name) or SECRET_VALUE.match(value):
            return (
                f"env {name} looks like a secret; template env is stored and shown in plain text, "
                "so secrets come from tools instead"
            )
    return None


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Owner = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,200}$")]
ToolName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
Visibility = Literal["private", "public"]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class PoolPolicy(_Camel, InputModel):
    """Idle bounds of the template's pool (DESIGN.md §12); null: the deployment's settings."""

    min_idle: Annotated[int, Field(ge=0, le=1000)] | None = None
    max_idle: Annotated[int, Field(ge=0, le=1000)] | None = None
    # `fixed`: the target is minIdle (raised by schedules); `demand`: sized from the measured claim
    # rate and refill time (pool.sizing); null: the deployment's POOL_SIZING.
    sizing: Literal["fixed", "demand"] | None = None
    # Windows that raise the floor, one per line: `weekdays 09-18 >= 10` (pool.sizing.schedule).
    schedules: Annotated[list[Annotated[str, StringConstraints(max_length=200)]], Field(max_length=20)] = []
    # The cost budget: idle instance-hours per rolling 24 h; null: none.
    idle_hours_per_day: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    # Idle instances older than this are replaced by fresh ones; null: never.
    max_idle_age_seconds: Annotated[float, Field(ge=60, le=30 * 86_400)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> PoolPolicy:
        if self.min_idle is not None and self.max_idle is not None and self.min_idle > self.max_idle:
            raise ValueError("minIdle must not exceed maxIdle")
        return self

    @field_validator("schedules")
    @classmethod
    def _schedules_parse(cls, lines: list[str]) -> list[str]:
        parse_all(lines)  # a ScheduleError (a ValueError) names the line and what is wrong in it
        return lines


class OnReplenish(_Camel, InputModel):
    """Old idle instances serve until claimed; new creates use the new version."""

    strategy: Literal["on-replenish"] = "on-replenish"


class Recreate(_Camel, InputModel):
    """Replace old idle instances now, never below `floor` idle ones of the template."""

    strategy: Literal["recreate"]
    floor: Annotated[int, Field(ge=0, le=1000)] = 1


class Canary(_Camel, InputModel):
    """Create `count` of the new version, watch them for `windowSeconds`, then roll on or back."""

    strategy: Literal["canary"]
    count: Annotated[int, Field(ge=1, le=100)] = 1
    window_seconds: Annotated[int, Field(ge=10, le=86_400)] = 600


Rollout = Annotated[OnReplenish | Recreate | Canary, Field(discriminator="strategy")]


class TemplateSpec(_Camel, InputModel):
    """What one version holds. Left out: the deployment's settings (image, tools), nothing (env)."""

    image: Annotated[str, StringConstraints(pattern=r"^\S{1,500}$")] | None = None
    tools: Annotated[list[ToolName], Field(max_length=16)] | None = None
    agent_name: Name | None = None
    instructions: Annotated[str, StringConstraints(max_length=50_000)] | None = None
    model: Annotated[str, StringConstraints(pattern=r"^\S{1,200}$")] | None = None
    env: Annotated[dict[str, Annotated[str, StringConstraints(max_length=4000)]], Field(max_length=50)] = {}
    resources: JsonObject = {}
    pool_policy: PoolPolicy = PoolPolicy()
    # Live agents one owner may have of this template (a claim past it: 429); null: no limit of
    # the template's own (POOL_OWNER_MAX_AGENTS still caps the owner across templates).
    owner_agent_limit: Annotated[int, Field(ge=1, le=100_000)] | None = None
    rollout: Rollout = OnReplenish()

    @field_validator("tools")
    @classmethod
    def _tools_once(cls, tools: list[str] | None) -> list[str] | None:
        if tools is not None and len(set(tools)) != len(tools):
            raise ValueError("each tool may be named once")
        return tools

    @field_validator("resources")
    @classmethod
    def _resources_small(cls, resources: dict[str, Any]) -> dict[str, Any]:
        if len(json.dumps(resources)) > MAX_RESOURCES_BYTES:
            raise ValueError(f"resources must serialise to at most {MAX_RESOURCES_BYTES} bytes")
        return resources


class TemplateCreate(TemplateSpec):
    slug: Slug
    name: Name
    owner: Owner = DEFAULT_OWNER
    visibility: Visibility = "private"


class TemplateUpdate(TemplateSpec):
    """A change: any version field given makes a new version (the current one with those fields
    replaced); `name` and `visibility` belong to the template and change it in place."""

    name: Name | None = None
    visibility: Visibility | None = None

    @model_validator(mode="after")
    def _kept_fields_not_null(self) -> TemplateUpdate:
        # Left out keeps them; a null would clear a template's name or visibility, which it must have.
        for field in ("name", "visibility"):
            if field in self.model_fields_set and getattr(self, field) is None:
                raise ValueError(f"{field} cannot be null: leave it out to keep it")
        return self


class TemplateFork(_Camel, InputModel):
    owner: Owner
    slug: Slug | None = None
    name: Name | None = None


class _Read(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class TemplateVersion(_Read):
    template_id: str
    version: int
    image: str | None
    tools: list[str] | None
    agent_name: str | None
    instructions: str | None
    model: str | None
    env: dict[str, str]
    resources: dict[str, Any]
    pool_policy: PoolPolicy
    owner_agent_limit: int | None
    rollout: Rollout
    created_at: datetime


class Template(_Read):
    id: str
    slug: str
    name: str
    owner: str
    visibility: Visibility
    forked_from: str | None
    forked_from_version: int | None
    current_version: int
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    current: TemplateVersion


SyncOutcomeKind = Literal["synced", "skipped", "failed"]


class SyncOutcome(_Read):
    """One agent's part of a sync: `synced` (its runtime took the instructions, recorded),
    `skipped` (nothing to do or nothing it can do, with the reason), `failed` (it did not answer)."""

    instance_id: str
    outcome: SyncOutcomeKind
    reason: str | None = None
    template_synced_at: datetime | None = None


class TemplateSynced(_Read):
    template_id: str
    version: int = Field(description="The template version whose instructions were pushed")
    synced: int
    skipped: int
    failed: int
    instances: list[SyncOutcome]


class TemplatePool(_Read):
    """One template's pool: the idle supply it aims at, its queue, its instances by status, and
    its idle instances by version (a rollout's progress)."""

    template_id: str
    slug: str
    current_version: int
    archived: bool
    target: int
    queued: int
    counts: dict[str, int]
    idle_by_version: dict[str, int]
    # The latest rollout (pool.templates.rollout.Rollout.to_json): its phase, and why it ended.
    rollout: dict[str, Any] | None = None
    # Why the target is what it is (DESIGN.md §12: demand, schedule, budget, floor, cap).
    target_reason: str | None = None
    # The measured demand (claims/min), refill time (p50/p90, per platform) and idle-hours spent.
    sizing: dict[str, Any] | None = None
