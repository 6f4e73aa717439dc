"""Wire schemas of services' internal API, shared by services (server) and pool (client).

Fields are camelCase on the wire and snake_case in Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

InstanceId = Annotated[str, StringConstraints(pattern=r"^[0-9a-z]{12}$")]
ToolId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
EnvKey = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]

# Railway's DeploymentStatus values; the local provider reports the same words.
DEPLOY_IN_PROGRESS = frozenset(
    {"INITIALIZING", "QUEUED", "WAITING", "NEEDS_APPROVAL", "BUILDING", "DEPLOYING"}
)
DEPLOY_FAILED = frozenset({"FAILED", "CRASHED"})
DEPLOY_GONE = frozenset({"REMOVED", "REMOVING", "SKIPPED"})
DeployStatus = Literal[
    "INITIALIZING",
    "QUEUED",
    "WAITING",
    "NEEDS_APPROVAL",
    "BUILDING",
    "DEPLOYING",
    "SUCCESS",
    "FAILED",
    "CRASHED",
    "REMOVED",
    "REMOVING",
    "SKIPPED",
    "SLEEPING",
]


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class InstanceCreate(WireModel):
    instance_id: InstanceId
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    tools: list[ToolId] = Field(default_factory=list)
    env: dict[EnvKey, str] = Field(default_factory=dict)


class ToolResource(WireModel):
    """One ledger entry as the pool and operators see it: never the secret."""

    tool_id: str
    resource_id: str | None
    env_key: str
    status: str


class InstanceCreated(WireModel):
    instance_id: str
    name: str
    url: str | None
    deploy_status: str | None
    # Handed out once, to the caller that created the instance; services keeps only a hash.
    gateway_token: str | None
    tools: list[ToolResource]


class InstanceDestroyed(WireModel):
    instance_id: str
    destroyed: bool
    already_gone: bool


class StatusBatchRequest(WireModel):
    instance_ids: list[InstanceId] | None = None
    probe: bool = True


class HealthProbe(WireModel):
    ok: bool
    status_code: int | None = None
    ready: bool | None = None
    error: str | None = None
    elapsed_ms: float | None = None


class InstanceObservation(WireModel):
    instance_id: str
    url: str | None
    deploy_status: str | None
    health: HealthProbe | None
    created_at: datetime
    error: str | None = None


class PlatformOrphan(WireModel):
    """Something the platform runs that services has no row for."""

    ref: str
    name: str
    created_at: datetime | None = None


class StatusBatch(WireModel):
    observed_at: datetime
    instances: dict[str, InstanceObservation]
    # Ids asked for that services does not know (so the pool can resolve its rows).
    unknown: list[str] = Field(default_factory=list)
    # Ids whose health probe did not run before services' batch deadline: health unknown, which
    # is no observation (not a failed probe). Their `health` is null.
    unprobed: list[str] = Field(default_factory=list)
    orphans: list[PlatformOrphan] = Field(default_factory=list)
    platform_ok: bool = True
    platform_error: str | None = None


class ConfigureRequest(WireModel):
    variables: dict[EnvKey, str]
    redeploy: bool = False


class RedeployRequest(WireModel):
    image: str | None = None


class OperationResult(WireModel):
    instance_id: str
    ok: bool
    deploy_status: str | None = None


class ToolGrant(WireModel):
    """A provisioned tool. `env_value` is set only in the answer to the instance itself."""

    instance_id: str
    tool_id: str
    resource_id: str | None
    env_key: str
    env_value: str | None = None
    status: str


class RegistryTool(WireModel):
    id: str
    mode: str
    env_key: str
    configured: bool = True


class Registry(WireModel):
    tools: list[RegistryTool]
    platform: str
