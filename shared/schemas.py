"""Wire schemas of services' internal API, shared by services (server) and pool (client).

Fields are camelCase on the wire and snake_case in Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from shared.validation import InputModel

InstanceId = Annotated[str, StringConstraints(pattern=r"^[0-9a-z]{12}$")]
ToolId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
EnvKey = Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
GatewayToken = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{24,200}$")]

# The one deploy vocabulary above the providers (DESIGN.md §9): each provider maps its own words
# onto these inside `services/platforms/<provider>/`, so neither app speaks a platform's words.
# `removed` is the platform saying so (final: the pool tears down what is left); `missing` is the
# platform's listing leaving the instance out this time (a listing can lag a create or drop an entry
# between pages), so the pool counts it as one failed observation toward its death threshold.
DeployState = Literal[
    "pending", "deploying", "running", "sleeping", "failed", "crashed", "removed", "missing", "unknown"
]
DEPLOY_STATES: tuple[DeployState, ...] = get_args(DeployState)

# How far services' asynchronous create of an instance is (DESIGN.md §3): `queued` (recorded, waiting
# for a worker), `creating` (a worker is making its tools and platform service), `deploying` (made
# at the platform: from here `deployStatus` says how far; every active instance is in this phase),
# `failed` (rolled back; the observation's `error` says why), `destroying`. Read as text by the
# pool, so a phase a newer services adds is an unknown one (it waits), never a parse error.
CreatePhase = Literal["queued", "creating", "deploying", "failed", "destroying"]


class WireModel(InputModel):
    """Strict: a field the model does not know is an error, and so is text PostgreSQL cannot store
    (`InputModel`). For outside input (what services is asked to do), and for views nobody parses
    back (operators' reads)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class WireAnswer(BaseModel):
    """An answer services sends and the pool parses. Unknown fields are ignored, so a services
    deploy that adds a field does not blind an older pool (its tick would fail every batch)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class InstanceCreate(WireModel):
    instance_id: InstanceId
    name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    # None (left out): services' SERVICES_DEFAULT_TOOLS; `[]`: none. A list default would be sent
    # as `[]` by every client that dumps the model, and the default would never apply.
    tools: list[ToolId] | None = None
    env: dict[EnvKey, str] = Field(default_factory=dict)
    # The runtime image to deploy (a template version's); None: services' SERVICES_RUNTIME_IMAGE.
    image: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = None
    # The instance's GATEWAY_TOKEN, made by the caller (the pool keeps it encrypted in its row
    # before it asks), so an asynchronous create never has to hand a secret out later. Left out:
    # services makes one and hands it out in the first answer only.
    gateway_token: GatewayToken | None = None


class ToolResource(WireAnswer):
    """One ledger entry as the pool and operators see it: never the secret."""

    tool_id: str
    resource_id: str | None
    env_key: str
    status: str


class InstanceAccepted(WireAnswer):
    """The answer (202) to a create, and to each repeat of it: where that create is now."""

    instance_id: str
    name: str
    phase: str  # a CreatePhase, read as text
    url: str | None
    # A DeployState; read as plain text, so a state a newer services adds is an unknown one to
    # an older pool (it waits, as for any deploy in progress), never a parse error.
    deploy_status: str | None
    # Why the create failed (phase `failed`).
    error: str | None = None
    # Only in the first answer, and only when services made the token (the request had none);
    # services keeps its hash.
    gateway_token: str | None = None
    tools: list[ToolResource] = Field(default_factory=list)


class InstanceDestroyed(WireAnswer):
    instance_id: str
    destroyed: bool
    already_gone: bool


class StatusBatchRequest(WireModel):
    # None: every instance services knows, the platforms listed in full (orphans found).
    instance_ids: list[InstanceId] | None = None
    probe: bool = True
    # Of `instance_ids`, the ones the platform is asked about now (batched, no listing); the
    # others carry the deploy status services last observed. None: all of them.
    platform_ids: list[InstanceId] | None = None
    # The pool's safety-net listing (with `instance_ids` None): every platform listed in full,
    # but only the instances whose deploy status is not `running` reported, plus `fleet`.
    changes_only: bool = False


class HealthProbe(WireAnswer):
    ok: bool
    status_code: int | None = None
    ready: bool | None = None
    error: str | None = None
    elapsed_ms: float | None = None


class InstanceObservation(WireAnswer):
    instance_id: str
    url: str | None
    deploy_status: str | None  # a DeployState, read as text (see InstanceAccepted)
    health: HealthProbe | None
    created_at: datetime
    error: str | None = None
    # A CreatePhase (read as text); null from a services older than the asynchronous create.
    phase: str | None = None
    # The platform it lives on (null: not placed yet), and whether that platform answered this
    # observation (null from a services older than placement: then `StatusBatch.platform_ok` says).
    platform: str | None = None
    platform_ok: bool | None = None


class PlatformOrphan(WireAnswer):
    """Something the platform runs that services has no row for."""

    ref: str
    name: str
    created_at: datetime | None = None
    # The platform that listed it (null from a services older than placement).
    platform: str | None = None


class StatusBatch(WireAnswer):
    observed_at: datetime
    instances: dict[str, InstanceObservation]
    # Ids whose health probe did not run before services' batch deadline: health unknown, which
    # is no observation (not a failed probe). Their `health` is null.
    unprobed: list[str] = Field(default_factory=list)
    orphans: list[PlatformOrphan] = Field(default_factory=list)
    platform_ok: bool = True
    platform_error: str | None = None
    # With `changes_only`: every instance id services holds, and the platform calls the listing
    # cost (the pool paces its listings by them). Null otherwise.
    fleet: list[str] | None = None
    platform_calls: int | None = None


PlatformHealthWord = Literal["ok", "full", "backing off", "draining"]


class PlatformView(WireAnswer):
    """One platform as placement sees it (services `GET /platforms`)."""

    name: str
    provider: str
    priority: int
    capacity: int | None
    # Live instances placed there (creates in flight count), and of those the creates in flight.
    in_use: int
    creating: int
    # A PlatformHealthWord, read as text so a word added later does not blind an older pool.
    health: str
    backoff_until: datetime | None = None
    consecutive_failures: int = 0
    last_error: str | None = None


class PlatformList(WireAnswer):
    observed_at: datetime
    platforms: list[PlatformView]


class ConfigureRequest(WireModel):
    variables: dict[EnvKey, str]
    redeploy: bool = False


class RedeployRequest(WireModel):
    image: str | None = None


class OperationResult(WireAnswer):
    instance_id: str
    ok: bool
    deploy_status: str | None = None  # a DeployState, read as text (see InstanceAccepted)


class ToolGrant(WireAnswer):
    """A provisioned tool. `env_value` is set only in the answer to the instance itself."""

    instance_id: str
    tool_id: str
    resource_id: str | None
    env_key: str
    env_value: str | None = None
    status: str


class RegistryTool(WireAnswer):
    id: str
    mode: str
    env_key: str
    configured: bool = True


class Registry(WireAnswer):
    tools: list[RegistryTool]
    platform: str
