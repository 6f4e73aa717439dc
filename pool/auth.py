"""Who may call what.

- Operator routes and `POST /api/pool/claim` take `Authorization: Bearer POOL_API_KEY`: the claim
  is called by the dashboard's and the public site's servers, never by browsers directly.
- `POST /api/pool/pending-acceptance/*` is called by an agent instance about itself, with its own
  gateway token; the token of one instance is worth nothing for another one.
- `/healthz`, `/version` and `/metrics` are open: they carry counts, never agent data or secrets.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pool.models import Instance
from shared.auth import SecretBox, bearer_token, require_bearer, tokens_match
from shared.errors import Unauthorized


async def require_operator(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    require_bearer(authorization, request.state.settings.api_key)


OperatorAuth = Depends(require_operator)


async def authenticate_instance(
    session: AsyncSession, box: SecretBox, *, instance_id: str, authorization: str | None
) -> Instance:
    """The instance row whose own gateway token is the bearer; 401 for anything else, unknown ids included."""
    token = bearer_token(authorization)
    instance = await session.get(Instance, instance_id) if token else None
    if instance is None or instance.gateway_token_enc is None:
        raise Unauthorized("missing or invalid instance token")
    try:
        expected = box.decrypt(instance.gateway_token_enc)
    except ValueError as exc:
        raise Unauthorized("missing or invalid instance token") from exc
    if not tokens_match(token, expected):
        raise Unauthorized("missing or invalid instance token")
    return instance
