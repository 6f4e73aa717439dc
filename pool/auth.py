"""Who may call what.

- Operator routes and `POST /api/pool/claim` take `Authorization: Bearer POOL_API_KEY`: the claim
  is called by the dashboard's and the public site's servers, never by browsers directly.
- `POST /api/pool/pending-acceptance/*` is called by an agent instance about itself, with its own
  gateway token; the token of one instance is worth nothing for another one.
- The production agent images call back in two more forms (specs/runtime-callbacks.md): body auth on
  `/api/pool/*` (`{"instanceId", "gatewayToken"}` in the JSON body) and `Bearer <instanceId>:<gatewayToken>`
  on `/api/proxy/*`. Both name the instance and carry its own gateway token, checked like the bearer form.
- `POST /api/pool/internal/observe/{id}` is called by services (a platform event named the instance)
  with the key the two apps already share, `POOL_SERVICES_API_KEY` (= `SERVICES_API_KEY`): services is
  never given `POOL_API_KEY`, and this key opens nothing else here (an observation is harmless).
- `/healthz`, `/version` and `/metrics` are open: they carry counts, never agent data or secrets.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pool.models import Instance
from shared.auth import SecretBox, bearer_token, require_bearer, tokens_match
from shared.errors import Unauthorized

INSTANCE_ID = re.compile(r"[0-9a-z]{12}")


async def require_operator(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    require_bearer(authorization, request.state.settings.api_key)


OperatorAuth = Depends(require_operator)


async def require_services(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    require_bearer(authorization, request.state.settings.services_api_key)


ServicesAuth = Depends(require_services)

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
    return await authenticate_token(session, box, instance_id=instance_id, token=bearer_token(authorization))


async def authenticate_token(
    session: AsyncSession, box: SecretBox, *, instance_id: str, token: str | None
) -> Instance:
    """The instance row whose own gateway token is `token`; 401 for anything else, unknown ids included."""
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


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, or {} (a body that is not one is the route's model's to refuse)."""
    try:
        body = await request.json()  # cached by Starlette: the route's model parses the same bytes
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def instance_authorization(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> str | None:
    """The `Authorization` an instance callback carries: the header, or the images' body auth
    (`gatewayToken` in the JSON body) as the same bearer form."""
    if authorization:
        return authorization
    token = (await _json_body(request)).get("gatewayToken")
    return f"Bearer {token}" if isinstance(token, str) and token else None


InstanceAuthorization = Annotated[str | None, Depends(instance_authorization)]


def proxy_credentials(authorization: str | None) -> tuple[str, str]:
    """`Bearer <instanceId>:<gatewayToken>` → (instance id, token); 401 for any other shape."""
    instance_id, colon, token = (bearer_token(authorization) or "").partition(":")
    if not colon or not INSTANCE_ID.fullmatch(instance_id) or not token:
        raise Unauthorized("missing or invalid instance credentials (Bearer <instanceId>:<gatewayToken>)")
    return instance_id, token


async def callback_instance_id(request: Request) -> str:
    """The instance a body-auth callback names (`instanceId` in its JSON body)."""
    instance_id = (await _json_body(request)).get("instanceId")
    if not isinstance(instance_id, str) or not INSTANCE_ID.fullmatch(instance_id):
        raise Unauthorized("missing or invalid instance credentials (instanceId)")
    return instance_id
