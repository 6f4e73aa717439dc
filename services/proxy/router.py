"""Services' proxy routes (operator key): the pool forwards an instance's `/api/proxy/*` and credit
callbacks here, naming the instance it authenticated. The rate limit and the event log live in the
pool, the one way in, so these routes are not open to instance tokens."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from services.auth import OperatorAuth
from services.deps import BoxDep, SessionmakerDep, SettingsDep, ToolsDep
from services.proxy import mail, service, sms
from services.proxy.resources import owned
from services.proxy.schemas import EmailLabels, EmailSend, SmsSend

ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "A sender that is not the instance's own, or a message that is not its own"},
    404: {"description": "Unknown instance, or it has no inbox/number/key"},
    409: {"description": "Credits already at the cap"},
    502: {"description": "The vendor failed or could not be reached"},
    503: {"description": "The vendor is not configured on this deployment"},
}
router = APIRouter(
    prefix="/proxy/{instance_id}", tags=["proxy"], dependencies=[OperatorAuth], responses=ERRORS
)

InstanceIdPath = Annotated[str, Path(pattern=r"^[0-9a-z]{12}$")]
MessageIdPath = Annotated[str, Path(pattern=r"^[^\x00-\x1f\x7f/]{1,300}$")]
Kind = Annotated[Literal["email", "sms"], Path()]


def _answer(result: tuple[int, Any]) -> JSONResponse:
    status, body = result
    return JSONResponse(body, status_code=status)


@router.get("/info")
async def info(instance_id: InstanceIdPath, sessionmaker: SessionmakerDep) -> dict[str, Any]:
    """The instance's own inbox and number (null when it has none)."""
    return service.info(await owned(sessionmaker, instance_id))


@router.get("/self-info")
async def self_info(instance_id: InstanceIdPath, sessionmaker: SessionmakerDep) -> dict[str, Any]:
    """The instance's runtime image and version."""
    return service.self_info(await owned(sessionmaker, instance_id))


@router.post("/{kind}/provision")
async def provision(
    instance_id: InstanceIdPath, kind: Kind, sessionmaker: SessionmakerDep, tools: ToolsDep, box: BoxDep
) -> dict[str, Any]:
    """Give the instance an inbox or a number now (idempotent)."""
    return await service.provision(sessionmaker, tools=tools, box=box, instance_id=instance_id, kind=kind)


@router.post("/{kind}/unprovision")
async def unprovision(
    instance_id: InstanceIdPath, kind: Kind, sessionmaker: SessionmakerDep, tools: ToolsDep, box: BoxDep
) -> dict[str, Any]:
    """Release the instance's inbox or number (idempotent)."""
    return await service.unprovision(sessionmaker, tools=tools, box=box, instance_id=instance_id, kind=kind)


@router.post("/email/send")
async def email_send(
    instance_id: InstanceIdPath, body: EmailSend, sessionmaker: SessionmakerDep, tools: ToolsDep
) -> JSONResponse:
    """Send from the instance's own inbox; the vendor's status and body come back."""
    return _answer(await mail.send(tools, await owned(sessionmaker, instance_id), body))


@router.get("/email/messages")
async def email_messages(
    instance_id: InstanceIdPath, request: Request, sessionmaker: SessionmakerDep, tools: ToolsDep
) -> JSONResponse:
    """The instance's own messages (list filters pass through)."""
    resources = await owned(sessionmaker, instance_id)
    return _answer(await mail.listing(tools, resources, "messages", dict(request.query_params)))


@router.get("/email/threads")
async def email_threads(
    instance_id: InstanceIdPath, request: Request, sessionmaker: SessionmakerDep, tools: ToolsDep
) -> JSONResponse:
    """The instance's own threads."""
    resources = await owned(sessionmaker, instance_id)
    return _answer(await mail.listing(tools, resources, "threads", dict(request.query_params)))


@router.get("/email/messages/{message_id}")
async def email_message(
    instance_id: InstanceIdPath,
    message_id: MessageIdPath,
    sessionmaker: SessionmakerDep,
    tools: ToolsDep,
    settings: SettingsDep,
) -> JSONResponse:
    """One of the instance's messages, its attachments inlined (403 unless it is in its inbox)."""
    resources = await owned(sessionmaker, instance_id)
    return _answer(await mail.read(tools, resources, message_id, settings.proxy_attachment_max_bytes))


@router.patch("/email/messages/{message_id}")
async def email_label(
    instance_id: InstanceIdPath,
    message_id: MessageIdPath,
    body: EmailLabels,
    sessionmaker: SessionmakerDep,
    tools: ToolsDep,
) -> JSONResponse:
    """Add or remove labels on one of the instance's messages."""
    return _answer(await mail.label(tools, await owned(sessionmaker, instance_id), message_id, body))


@router.post("/sms/send")
async def sms_send(
    instance_id: InstanceIdPath, body: SmsSend, sessionmaker: SessionmakerDep, tools: ToolsDep
) -> JSONResponse:
    """Send from the instance's own number, with the operator's messaging profile."""
    return _answer(await sms.send(tools, await owned(sessionmaker, instance_id), body))


@router.get("/sms/records")
async def sms_records(
    instance_id: InstanceIdPath, request: Request, sessionmaker: SessionmakerDep, tools: ToolsDep
) -> JSONResponse:
    """Message records of the instance's own number (its number forced into the filter)."""
    resources = await owned(sessionmaker, instance_id)
    return _answer(await sms.records(tools, resources, dict(request.query_params)))


@router.get("/sms/messages/{message_id}")
async def sms_message(
    instance_id: InstanceIdPath, message_id: MessageIdPath, sessionmaker: SessionmakerDep, tools: ToolsDep
) -> JSONResponse:
    """One message, 403 unless the instance's number sent or received it."""
    return _answer(await sms.read(tools, await owned(sessionmaker, instance_id), message_id))


@router.get("/credits")
async def credits(
    instance_id: InstanceIdPath, sessionmaker: SessionmakerDep, tools: ToolsDep
) -> dict[str, Any]:
    """Limit, usage and remaining credit of the instance's own OpenRouter key."""
    return await service.credits(tools, await owned(sessionmaker, instance_id))


@router.post("/credits/top-up")
async def credits_top_up(
    instance_id: InstanceIdPath, sessionmaker: SessionmakerDep, tools: ToolsDep, settings: SettingsDep
) -> dict[str, Any]:
    """Raise the key's limit by the increment up to the cap (409 at the cap)."""
    return await service.top_up(tools, await owned(sessionmaker, instance_id), settings)
