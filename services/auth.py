"""Who may call services: the operator (bearer `SERVICES_API_KEY`) on every route, and an
instance (its own `INSTANCE_SERVICES_TOKEN`) on the tool routes for itself only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import select

from services.deps import SessionmakerDep, SettingsDep
from services.models import InstanceInfra
from shared.auth import bearer_token, hash_token, tokens_match
from shared.errors import Forbidden, Unauthorized


async def require_operator(request: Request, settings: SettingsDep) -> None:
    # An instance token never equals the API key, so instances are refused here with 401.
    if not tokens_match(bearer_token(request.headers.get("authorization")), settings.api_key):
        raise Unauthorized("missing or invalid bearer token")


@dataclass(frozen=True)
class ToolCaller:
    """The operator (instance_id None) or the instance the token belongs to."""

    instance_id: str | None

    @property
    def is_instance(self) -> bool:
        return self.instance_id is not None


async def tool_caller(
    request: Request, instance_id: str, settings: SettingsDep, sessionmaker: SessionmakerDep
) -> ToolCaller:
    token = bearer_token(request.headers.get("authorization"))
    if tokens_match(token, settings.api_key):
        return ToolCaller(instance_id=None)
    if not token:
        raise Unauthorized("missing or invalid bearer token")
    # Only hashes are stored; a sha256 of a random 256-bit token is safe to look up by equality.
    async with sessionmaker() as session:
        owner = await session.scalar(
            select(InstanceInfra.instance_id).where(InstanceInfra.services_token_hash == hash_token(token))
        )
    if owner is None:
        raise Unauthorized("missing or invalid bearer token")
    if owner != instance_id:
        raise Forbidden("an instance token is valid for its own instance only")
    return ToolCaller(instance_id=owner)


OperatorAuth = Depends(require_operator)
ToolCallerDep = Annotated[ToolCaller, Depends(tool_caller)]
