"""The routes production agent images call back on (specs/runtime-callbacks.md), and the operator's
view of an instance's event log.

- `/api/pool/self-destruct|self-info|credits-check|credits-topup|redeem-coupon`: body auth
  (`{"instanceId", "gatewayToken"}`), or `{"instanceId"}` with `Authorization: Bearer <gatewayToken>`.
- `/api/proxy/*`: `Authorization: Bearer <instanceId>:<gatewayToken>`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse

from pool.auth import OperatorAuth, callback_instance_id, instance_authorization, proxy_credentials
from pool.callbacks import events, service
from pool.callbacks.schemas import Event, SelfDestructed
from pool.deps import PoolDep
from pool.models import Instance
from shared.auth import bearer_token
from shared.db import SessionDep

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Not this instance's own credentials"},
    403: {"description": "A sender that is not the instance's own, or a message that is not its own"},
    404: {"description": "No inbox/number/key for this instance (or no such offer)"},
    409: {"description": "Credits already at the cap"},
    429: {"description": "Send limit reached (Retry-After says when)"},
    502: {"description": "The vendor or services failed"},
    503: {"description": "The vendor is not configured, or services is unavailable"},
}
callbacks = APIRouter(prefix="/api/pool", tags=["instance callbacks"], responses=ERRORS)
proxy = APIRouter(prefix="/api/proxy", tags=["service proxy"], responses=ERRORS)
operator = APIRouter(prefix="/api/pool", tags=["instances"], dependencies=[OperatorAuth])

InstanceIdPath = Annotated[str, Path(pattern=r"^[0-9a-z]{12}$")]
MessageIdPath = Annotated[str, Path(pattern=r"^[^\x00-\x1f\x7f/]{1,300}$")]


async def body_caller(
    request: Request,
    pool: PoolDep,
    instance_id: Annotated[str, Depends(callback_instance_id)],
    authorization: Annotated[str | None, Depends(instance_authorization)],
) -> Instance:
    return await service.authenticate(pool, instance_id=instance_id, token=bearer_token(authorization))


async def proxy_caller(pool: PoolDep, authorization: Annotated[str | None, Header()] = None) -> Instance:
    instance_id, token = proxy_credentials(authorization)
    return await service.authenticate(pool, instance_id=instance_id, token=token)


BodyCaller = Annotated[Instance, Depends(body_caller)]
ProxyCaller = Annotated[Instance, Depends(proxy_caller)]


def _answer(result: tuple[int, Any, dict[str, str]]) -> JSONResponse:
    status, body, headers = result
    return JSONResponse(body, status_code=status, headers=headers)


@callbacks.post("/self-destruct", response_model=SelfDestructed)
async def self_destruct(instance: BodyCaller, pool: PoolDep, background: BackgroundTasks) -> SelfDestructed:
    """The instance leaves for good: marked dead now, torn down (tools, platform, row) right after."""
    await service.self_destruct(pool, instance)
    background.add_task(service.destroy, pool, instance.id)
    return SelfDestructed(instance_id=instance.id)


@callbacks.post("/self-info")
async def self_info(instance: BodyCaller, pool: PoolDep) -> JSONResponse:
    """`{runtimeVersion, runtimeImage, templateVersion}` (templateVersion null until templates exist)."""
    status, body, headers = await service.forward(
        pool, instance, method="GET", route="/self-info", kind="callback.self_info"
    )
    if status == 200 and isinstance(body, dict):
        body = {"ok": True, "instanceId": instance.id, **body, "latestImage": None}
    return JSONResponse(body, status_code=status, headers=headers)


@callbacks.post("/credits-check")
async def credits_check(instance: BodyCaller, pool: PoolDep) -> JSONResponse:
    """`{limit, usage, remaining, limitReset}` of the instance's own OpenRouter key."""
    return _answer(
        await service.forward(pool, instance, method="GET", route="/credits", kind="callback.credits_check")
    )


@callbacks.post("/credits-topup")
async def credits_topup(instance: BodyCaller, pool: PoolDep) -> JSONResponse:
    """Raise the key's limit by the increment, `{ok, previousLimit, newLimit}`; 409 at the cap."""
    return _answer(
        await service.forward(
            pool, instance, method="POST", route="/credits/top-up", kind="callback.credits_topup"
        )
    )


@callbacks.post("/redeem-coupon", status_code=404)
async def redeem_coupon(instance: BodyCaller) -> JSONResponse:
    """Not offered: coupons have no design here yet. A clear 404 refusal the images log (not a 5xx:
    nothing failed, and the fleet's invariant keeps 5xx for the documented 502/503)."""
    body = {"ok": False, "error": "coupons are not offered by this pool", "kind": "NotFound"}
    return JSONResponse(body, status_code=404)


@proxy.get("/info")
async def info(instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """`{instanceId, email, phone}`: the instance's own inbox and number (null when none)."""
    return _answer(await service.forward(pool, instance, method="GET", route="/info", kind="proxy.info"))


async def _tool(pool: PoolDep, instance: Instance, kind: str, action: str) -> JSONResponse:
    route = f"/{kind}/{action}"
    return _answer(
        await service.forward(pool, instance, method="POST", route=route, kind=f"proxy.{kind}.{action}")
    )


@proxy.post("/email/provision")
async def email_provision(instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """Give the instance an inbox now (idempotent): `{email, provisioned}`."""
    return await _tool(pool, instance, "email", "provision")


@proxy.post("/email/unprovision")
async def email_unprovision(instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """Release the instance's inbox (idempotent): `{email, unprovisioned, reason?}`."""
    return await _tool(pool, instance, "email", "unprovision")


@proxy.post("/sms/provision")
async def sms_provision(instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """Give the instance a phone number now (idempotent): `{phone, provisioned}`."""
    return await _tool(pool, instance, "sms", "provision")


@proxy.post("/sms/unprovision")
async def sms_unprovision(instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """Release the instance's number (idempotent): `{phone, unprovisioned, reason?}`."""
    return await _tool(pool, instance, "sms", "unprovision")


@proxy.post("/email/send")
async def email_send(body: dict[str, Any], instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """Send from the instance's own inbox (rate-limited per instance)."""
    return _answer(
        await service.forward(
            pool, instance, method="POST", route="/email/send", kind="proxy.email.send", json=body
        )
    )


async def _listing(pool: PoolDep, instance: Instance, request: Request, listing: str) -> JSONResponse:
    params = dict(request.query_params)
    route, kind = f"/email/{listing}", f"proxy.email.{listing}"
    return _answer(await service.forward(pool, instance, method="GET", route=route, kind=kind, params=params))


@proxy.get("/email/messages")
async def email_messages(request: Request, instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """The instance's own messages (list filters pass through)."""
    return await _listing(pool, instance, request, "messages")


@proxy.get("/email/threads")
async def email_threads(request: Request, instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """The instance's own threads."""
    return await _listing(pool, instance, request, "threads")


@proxy.get("/email/messages/{message_id}")
async def email_message(message_id: MessageIdPath, instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """One of the instance's messages, attachments inlined; 403 unless it is in the instance's inbox."""
    route = f"/email/messages/{message_id}"
    return _answer(await service.forward(pool, instance, method="GET", route=route, kind="proxy.email.read"))


@proxy.patch("/email/messages/{message_id}")
async def email_label(
    message_id: MessageIdPath, body: dict[str, Any], instance: ProxyCaller, pool: PoolDep
) -> JSONResponse:
    """Add or remove labels (`add_labels`, `remove_labels`) on one of the instance's messages."""
    route = f"/email/messages/{message_id}"
    return _answer(
        await service.forward(
            pool, instance, method="PATCH", route=route, kind="proxy.email.label", json=body
        )
    )


@proxy.post("/sms/send")
async def sms_send(body: dict[str, Any], instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """Send from the instance's own number (rate-limited per instance)."""
    return _answer(
        await service.forward(
            pool, instance, method="POST", route="/sms/send", kind="proxy.sms.send", json=body
        )
    )


@proxy.get("/sms/records")
async def sms_records(request: Request, instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """Message records of the instance's own number."""
    params = dict(request.query_params)
    return _answer(
        await service.forward(
            pool, instance, method="GET", route="/sms/records", kind="proxy.sms.records", params=params
        )
    )


@proxy.get("/sms/messages/{message_id}")
async def sms_message(message_id: MessageIdPath, instance: ProxyCaller, pool: PoolDep) -> JSONResponse:
    """One SMS; 403 unless the instance's number sent or received it."""
    route = f"/sms/messages/{message_id}"
    return _answer(await service.forward(pool, instance, method="GET", route=route, kind="proxy.sms.read"))


@proxy.get("/services/status", dependencies=[OperatorAuth])
async def services_status(
    pool: PoolDep, instance_id: Annotated[str, Query(alias="instanceId", pattern=r"^[0-9a-z]{12}$")]
) -> JSONResponse:
    """Operator: `{instanceId, email, phone}` of any instance."""
    response = await pool["services"].forward("GET", f"/proxy/{instance_id}/info")
    return JSONResponse(response.json(), status_code=response.status_code)


@operator.get("/instances/{instance_id}/events", response_model=list[Event])
async def instance_events(
    instance_id: InstanceIdPath,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[Event]:
    """The instance's event log, newest first (proxied calls, callbacks): never bodies or secrets."""
    rows = await events.list_events(session, instance_id=instance_id, limit=limit)
    return [Event.model_validate(row) for row in rows]
