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

# Who made a claim: an Idempotency-Key is scoped to it (two callers' equal keys are two claims).
# POOL_API_KEY is today the one claim credential, shared by every caller, so every claim has this
# identity; a credential per caller would name its own here.
API_KEY_CALLER = "pool_api_key"
# The dashboard's launch form (a logged-in operator): its keys come from the page, a scope of their own.
DASHBOARD_CALLER = "dashboard"


async def require_claim_caller(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> str:
    require_bearer(authorization, request.state.settings.api_key)
    return API_KEY_CALLER


ClaimCaller = Annotated[str, Depends(require_claim_caller)]


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
