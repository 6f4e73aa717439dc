from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from runtime.memory import Note

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


class Health(_Camel):
    ready: Literal[True] = True
    version: str
    runtime: str = "warmpool-runtime"
    # Optional routes of the contract this runtime serves (DESIGN.md §4): cloning needs export and
    # import, a template sync needs instructions.
    capabilities: list[Literal["export", "import", "instructions"]] = []


class Remember(BaseModel):
    text: str = Field(min_length=1, max_length=10_000)


class Remembered(BaseModel):
    ok: Literal[True] = True
    notes: int


class Memory(BaseModel):
    notes: list[Note]


ArchiveFormat = Literal["warmpool-memory/1"]
ARCHIVE_FORMAT: ArchiveFormat = "warmpool-memory/1"


class StateArchive(_Camel):
    """The agent's state as `/convos/export` answers it and `/convos/import` takes it: the memory
    directory as a tar.gz, base64 in JSON (the contract stays JSON), with its size and sha256."""

    format: ArchiveFormat = ARCHIVE_FORMAT
    encoding: Literal["tar+gzip+base64"] = "tar+gzip+base64"
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    archive: str


class Imported(_Camel):
    ok: Literal[True] = True
    size: int
    sha256: str
    notes: int
