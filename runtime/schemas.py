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


class Health(_Camel):
    ready: Literal[True] = True
    version: str
    runtime: str = "warmpool-runtime"


class Notice(BaseModel):
    """An inbound mail or SMS for this agent, as services delivers it (`POST /convos/notify`)."""

    model_config = ConfigDict(extra="allow")
    kind: Literal["email", "sms"]
    event_id: str | None = Field(None, alias="eventId", max_length=500)


class Noticed(BaseModel):
    ok: Literal[True] = True
    received: int
