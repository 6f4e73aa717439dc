from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

ProvisionStatus = Literal["created", "joined", "pending_acceptance"]


class _Camel(BaseModel):
    # The contract speaks camelCase on the wire; Python code keeps snake_case.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class ProvisionRequest(_Camel):
    agent_name: str = Field(min_length=1)
    instructions: str
    join_url: str | None = Field(None, min_length=1)
    profile_image: str | None = None
    metadata: dict[str, Any] | None = None


class ProvisionResult(_Camel):
    ok: Literal[True] = True
    conversation_id: str
    invite_url: str
    joined: bool
    status: ProvisionStatus


class ConvosStatus(_Camel):
    conversation_id: str | None
    inbox_id: str | None
    pending: bool
    clean: bool


class ResetResult(_Camel):
    ok: Literal[True] = True
    reset: Literal[True] = True


# The optional routes this runtime serves (DESIGN.md §4), announced in `/pool/health`.
CAPABILITIES = ["instructions"]


class Health(_Camel):
    ready: Literal[True] = True
    version: str
    runtime: str = "warmpool-runtime"
    capabilities: list[str] = Field(default_factory=lambda: list(CAPABILITIES))


class InstructionsUpdate(_Camel):
    """`POST /convos/instructions`: the bound agent's new instructions (a template sync), and
    optionally its new name."""

    instructions: str = Field(max_length=50_000)
    agent_name: str | None = Field(None, min_length=1, max_length=100)


class InstructionsResult(_Camel):
    ok: Literal[True] = True
    conversation_id: str
    agent_name: str


class Notice(BaseModel):
    """An inbound mail or SMS for this agent, as services delivers it (`POST /convos/notify`)."""

    model_config = ConfigDict(extra="allow")
    kind: Literal["email", "sms"]
    event_id: str | None = Field(None, alias="eventId", max_length=500)


class Noticed(BaseModel):
    ok: Literal[True] = True
    received: int
