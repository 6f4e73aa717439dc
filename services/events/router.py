"""`POST /webhooks/{provider}/{secret}`: a platform's deploy-event delivery (DESIGN.md §13).

The secret in the path is the only authentication (the platforms sign nothing): a wrong one, an
unknown provider and a provider with events off all answer the same 404, and neither the path
nor the secret is logged (services' request log masks the segment). The body is a hint: our
instance it names is observed by the pool, never given a status here.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from services.deps import HttpClientDep, PlatformsDep, SessionmakerDep, SettingsDep
from services.events import service
from services.inbound.router import counters
from shared.errors import AppError, BadRequest, NotFound
from shared.logging import get_logger

router = APIRouter(prefix="/webhooks", tags=["events"])
log = get_logger("services.events")

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON"},
    404: {"description": "Unknown provider, events off, or a wrong secret (all alike)"},
    502: {"description": "The pool could not be told (the platform may deliver again; the tick catches up)"},
}


@router.post("/{provider}/{secret}", responses=ERRORS)
async def deploy_event(
    provider: str,
    secret: str,
    request: Request,
    settings: SettingsDep,
    platforms: PlatformsDep,
    sessionmaker: SessionmakerDep,
    http: HttpClientDep,
) -> dict[str, Any]:
    """A deploy event: the pool observes the instance it names, if it is ours."""
    count = counters(request)
    platform = service.receiver(platforms, provider, secret)
    if platform is None:
        count.note("deploy_events", "unknown_secret")
        raise NotFound("not found")
    try:
        body = json.loads(await request.body())
    except ValueError:
        count.note(provider, "bad_body")
        raise BadRequest("the webhook body is not JSON") from None
    event = platform.parse_event(body)
    if event is None:
        count.note(provider, "ignored")
        return {"ok": True, "ignored": "not a deploy event of ours"}
    try:
        asked = await service.relay(sessionmaker, http, settings, provider, event)
    except AppError as exc:
        count.note(provider, "pool_unreachable")
        log.warning("event.pool_unreachable", provider=provider, kind=event.kind, error=exc.message)
        raise
    if not asked:
        count.note(provider, "not_ours")
        return {"ok": True, "ignored": "no instance of ours"}
    count.note(provider, "observed")
    return {"ok": True, "observed": asked}
