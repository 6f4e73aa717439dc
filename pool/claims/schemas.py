from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

from shared.validation import InputModel, JsonObject, utf8_at_most

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,200}$"
# Whose agent a claim makes: recorded on the instance, counted by the per-owner quota, listed by
# `GET /api/pool/agents?ownerId=`.
OWNER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,200}$"
MAX_METADATA_BYTES = 16_000
MAX_METADATA_KEY_LENGTH = 200

# Bounded in bytes too: the claims table's unique index on joinUrl holds an entry of at most
# ~2,700 bytes, and 2,000 characters outside the BMP are 8,000 (issue 11, finding 4).
Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2000), utf8_at_most(2000)]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


# The defaults of the system we replace: its landing site's join flow sends neither (DESIGN §10).
DEFAULT_AGENT_NAME = "Assistant"
DEFAULT_INSTRUCTIONS = "You are a helpful AI assistant."


class ClaimCreate(_Camel, InputModel):
    """A claim's body: ours, and the original system's as its clients send it (its fields with
    its defaults; fields this pool does not know are ignored rather than refused, so a client
    that sends more than we read keeps working)."""

    model_config = ConfigDict(extra="ignore")

    agent_name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] = (
        DEFAULT_AGENT_NAME
    )
    instructions: Annotated[str, StringConstraints(max_length=50_000)] = DEFAULT_INSTRUCTIONS
    join_url: Url | None = None
    profile_image: Url | None = None
    metadata: JsonObject | None = None
    # The template to claim from (DESIGN.md §11); left out: the `default` template.
    template_id: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    # Whose agent this is: recorded on the instance, counted by the per-owner quota.
    owner_id: Annotated[str, StringConstraints(pattern=OWNER_ID_PATTERN)] | None = None
    # Where the claim came from (the original's landing server sends "landing"); recorded with it.
    source: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)] | None = (
        None
    )
    # The original's name for the template to claim from: until templates exist, the one pool.
    runtime: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_small(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return None
        if any(len(key) > MAX_METADATA_KEY_LENGTH for key in value):
            raise ValueError(f"metadata keys must be at most {MAX_METADATA_KEY_LENGTH} characters")
        if len(json.dumps(value)) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
        return value


class Claim(_Camel):
    invite_url: str
    conversation_id: str
    instance_id: str
    joined: bool
    status: Literal["created", "joined", "pending_acceptance"]
    agent_name: str


class PendingAcceptance(_Camel, InputModel):
    instance_id: Annotated[str, StringConstraints(pattern=r"^[0-9a-z]{12}$")]
    # The production images' body auth and report (specs/runtime-callbacks.md); pool.auth reads the token.
    gateway_token: Annotated[str, StringConstraints(max_length=500)] | None = None
    conversation_id: Annotated[str, StringConstraints(max_length=500)] | None = None
    error: Annotated[str, StringConstraints(max_length=2_000)] | None = None


class PendingAcceptanceResult(_Camel):
    instance_id: str
    status: str
    changed: bool = Field(description="False when the instance was already in that state")


ClaimStatus = Literal["queued", "pending", "succeeded", "failed", "cancelled"]


class ClaimEnqueue(ClaimCreate):
    """`POST /api/pool/claims`: the claim's body, and how it waits in the queue."""

    priority: int = Field(
        0, ge=-1000, le=1000, description="Higher is served first; equal ones in arrival order"
    )
    timeout_seconds: int | None = Field(
        None, ge=1, description="Longest wait in the queue (default POOL_CLAIM_QUEUE_TIMEOUT_SECONDS)"
    )

    def claim_body(self) -> ClaimCreate:
        """The claim itself, as `POST /api/pool/claim` would take it (what is hashed and provisioned).
        Only the fields sent: a left-out agent name or instructions is the template's to fill in."""
        return ClaimCreate.model_validate(
            self.model_dump(exclude={"priority", "timeout_seconds"}, exclude_unset=True)
        )


class ClaimError(_Camel):
    """A claim's recorded failure in the one error shape: a sentence, its kind, the detail."""

    error: str
    kind: str
    detail: str


class ClaimTicket(_Camel):
    """A claim as a resource: where it is in the queue, then its outcome."""

    id: str
    status: ClaimStatus
    position: int | None = Field(None, description="1 = next to be served; only while queued")
    eta_seconds: float | None = Field(
        None, description="Expected seconds until an instance is assigned; null when not queued or unknown"
    )
    claim: Claim | None = Field(None, description="The claim's answer, once succeeded")
    error: ClaimError | None = Field(None, description="Why it failed or was cancelled")
