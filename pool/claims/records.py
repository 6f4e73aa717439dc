"""What the claim's statements write and read, as values: a new claim, a provisioned claim's outcome,
the instance a claim was given. `db.ClaimsDb` and `batches` turn them into statement arguments."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pool.claims.schemas import ClaimCreate
from pool.claims.statements import DEFAULT_TEMPLATE


@dataclass(frozen=True)
class Picked:
    id: str
    url: str | None
    gateway_token_enc: str | None


@dataclass(frozen=True)
class NewClaim:
    """A new claim's record, as `reserve` and `register` write it."""

    claim_id: str
    caller: str
    key: str | None
    digest: str
    join_url: str | None
    source: str | None = None
    template: str = DEFAULT_TEMPLATE
    owner_id: str | None = None

    @classmethod
    def of(
        cls, body: ClaimCreate, *, claim_id: str, caller: str, key: str | None, digest: str, template: str
    ) -> NewClaim:
        return cls(claim_id, caller, key, digest, body.join_url, body.source, template, body.owner_id)


@dataclass(frozen=True)
class Claimed:
    """A provisioned claim's outcome, as `mark_claimed` records it."""

    claim_id: str
    instance_id: str
    new_status: str
    body: ClaimCreate
    conversation_id: str
    invite_url: str
    response: dict[str, Any]

    def arguments(self) -> tuple[Any, ...]:
        """MARK_CLAIMED's arguments, in its order (MARK_CLAIMED_MANY's columns)."""
        body = self.body
        return (
            self.instance_id,
            self.new_status,
            body.agent_name,
            body.instructions,
            body.join_url,
            body.profile_image,
            json.dumps(body.metadata) if body.metadata is not None else None,
            body.owner_id,
            self.conversation_id,
            self.invite_url,
            self.claim_id,
            json.dumps(self.response),
        )
