"""Create and destroy instances: the platform service plus the tools, recorded before they exist.

Create is write-ahead: the `instance_infra` row (state `creating`) is committed before anything
is made, every resource the platform reports through `on_progress` is committed as it appears,
and each tool is in the ledger before its provider is called. A failure rolls back what was made
and answers 502; a crash leaves rows that `destroy` finishes.

Idempotency: a second create of an `active` instance returns the same instance with
`gatewayToken: null` (the token is handed out once and only its hash is kept); a create of an
instance still `creating` (in flight, or left by a crash) or `destroying` is a 409 — destroy it
to start again. Destroy of an unknown instance answers 200 with `alreadyGone: true`.

Also the operators' reads of instances (`GET /instances`), so the domain keeps STYLE's one
service module; ~350 lines, under the ~400 at which STYLE splits one.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import locks
from services.config import Settings
from services.instances.schemas import Instance, InstancePage
from services.ledger import service as ledger_service
from services.ledger.schemas import LedgerEntry
from services.models import InstanceInfra, InstanceService
from services.platforms.base import InstanceSpec, Platform, PlatformRef
from services.tools.base import ToolProvider
from services.tools.registry import get_tool
from shared.auth import SecretBox, hash_token, mint_token
from shared.errors import AppError, BadRequest, Conflict, NotFound, UpstreamError
from shared.logging import get_logger
from shared.schemas import (
    ConfigureRequest,
    InstanceCreate,
    InstanceCreated,
    InstanceDestroyed,
    OperationResult,
    RedeployRequest,
)

log = get_logger("services.instances")

Sessionmaker = async_sessionmaker[AsyncSession]
T = TypeVar("T")
# Set by services at create; configure may not overwrite them (the stored hashes would lie).
RESERVED_ENV = frozenset({"INSTANCE_ID", "GATEWAY_TOKEN", "INSTANCE_SERVICES_TOKEN", "PORT"})


def instance_lock(instance_id: str) -> ColumnElement[Any]:
    """Transaction-scoped lock on one instance id (the key of services.locks.hold_instance): a
    create writing its row, the sweep destroying a platform orphan of that id, a destroy and the
    instance's tool operations never overlap (services/sweep/platform.py)."""
    return locks.instance_xact_lock(instance_id)


def ref_of(row: InstanceInfra) -> PlatformRef:
    return PlatformRef(provider=row.provider, data=dict(row.platform_ref or {}), url=row.url)


def has_platform_resources(ref: PlatformRef) -> bool:
    """Whether the provider recorded anything it made (its data is opaque here)."""
    return bool(ref.data)


def apply_ref(row: InstanceInfra, ref: PlatformRef) -> None:
    row.platform_ref = dict(ref.data)
    row.url = ref.url


def describe(exc: BaseException) -> str:
    return exc.message if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"


async def call_platform(what: str, call: Awaitable[T]) -> T:
    """Platform failures reach the caller as 502 with what failed; our own 4xx pass through."""
    try:
        return await call
    except AppError as exc:
        if exc.status_code < 500:
            raise
        raise UpstreamError(f"{what}: {exc.message}") from exc
    except Exception as exc:
        raise UpstreamError(f"{what}: {describe(exc)}") from exc


async def _created(
    sessionmaker: Sessionmaker, instance_id: str, gateway_token: str | None
) -> InstanceCreated:
    async with sessionmaker.begin() as session:
        row = await session.get_one(InstanceInfra, instance_id)
        tools = await ledger_service.list_resources(session, instance_id=instance_id)
        return InstanceCreated(
            instance_id=row.instance_id,
            name=row.name,
            url=row.url,
            deploy_status=row.deploy_status,
            gateway_token=gateway_token,
            tools=tools,
        )


async def _record_intent(
    sessionmaker: Sessionmaker,
    *,
    platform: Platform,
    settings: Settings,
    body: InstanceCreate,
    tokens: dict[str, str],
) -> bool:
    """Commit the row before anything exists. False when the instance already exists and is active."""
    try:
        async with sessionmaker.begin() as session:
            await session.execute(select(instance_lock(body.instance_id)))
            row = await session.get(InstanceInfra, body.instance_id)
            if row is not None:
                if row.state == "active":
                    return False
                raise Conflict(f"instance {body.instance_id} is {row.state}; destroy it to start again")
            session.add(
                InstanceInfra(
                    instance_id=body.instance_id,
                    name=body.name,
                    provider=platform.name,
                    state="creating",
                    runtime_image=settings.runtime_image,
                    gateway_token_hash=hash_token(tokens["GATEWAY_TOKEN"]),
                    services_token_hash=hash_token(tokens["INSTANCE_SERVICES_TOKEN"]),
                )
            )
    except IntegrityError:
        raise Conflict(f"instance {body.instance_id} is being created by another request") from None
    return True


async def create_instance(
    sessionmaker: Sessionmaker,
    *,
    platform: Platform,
    tools: dict[str, ToolProvider],
    box: SecretBox,
    settings: Settings,
    body: InstanceCreate,
) -> InstanceCreated:
    tool_ids = list(dict.fromkeys(body.tools if "tools" in body.model_fields_set else settings.default_tools))
    for tool_id in tool_ids:
        get_tool(tools, tool_id)
    tokens = {"GATEWAY_TOKEN": mint_token("pool_gw"), "INSTANCE_SERVICES_TOKEN": mint_token("svc_it")}
    instance_id = body.instance_id
    if not await _record_intent(sessionmaker, platform=platform, settings=settings, body=body, tokens=tokens):
        return await _created(sessionmaker, instance_id, gateway_token=None)
    log.info("instance.create.started", instance_id=instance_id, tools=",".join(tool_ids))

    last_ref: list[PlatformRef] = []

    async def on_progress(ref: PlatformRef) -> None:
        last_ref[:] = [ref]
        async with sessionmaker.begin() as session:
            row = await session.get(InstanceInfra, instance_id, with_for_update=True)
            if row is None or row.state != "creating":
                raise Conflict(f"instance {instance_id} was destroyed while it was being created")
            apply_ref(row, ref)

    step = "tools"
    try:
        for tool_id in tool_ids:
            step = f"tool {tool_id}"
            await ledger_service.provision_tool(
                sessionmaker, tools=tools, box=box, instance_id=instance_id, tool_id=tool_id, reveal=False
            )
        step = "platform create"
        async with sessionmaker.begin() as session:
            env = {**body.env, **await ledger_service.tool_env(session, box=box, instance_id=instance_id)}
        env.update(
            INSTANCE_ID=instance_id,
            POOL_URL=settings.pool_url,
            SERVICES_URL=settings.callback_url,
            **tokens,
        )
        spec = InstanceSpec(instance_id=instance_id, name=body.name, env=env, image=settings.runtime_image)
        ref = await platform.create(spec, on_progress)
    except Exception as exc:
        reason = f"{step} failed for instance {instance_id}: {describe(exc)}"
        log.warning("instance.create.failed", instance_id=instance_id, error=reason)
        leftovers = await _roll_back(
            sessionmaker, platform=platform, tools=tools, instance_id=instance_id, fallback=last_ref
        )
        if leftovers:
            reason += f"; cleanup incomplete ({leftovers}), DELETE /destroy/{instance_id} finishes it"
        raise UpstreamError(reason) from exc

    async with sessionmaker.begin() as session:
        row = await session.get_one(InstanceInfra, instance_id, with_for_update=True)
        apply_ref(row, ref)
        row.state = "active"
        row.deploy_status = "deploying"
    log.info("instance.created", instance_id=instance_id, url=ref.url)
    return await _created(sessionmaker, instance_id, gateway_token=tokens["GATEWAY_TOKEN"])


async def _roll_back(
    sessionmaker: Sessionmaker,
    *,
    platform: Platform,
    tools: dict[str, ToolProvider],
    instance_id: str,
    fallback: list[PlatformRef],
) -> str | None:
    """Remove what a failed create made. Returns what could not be removed (rows are then kept)."""
    problems: list[str] = []
    try:
        await ledger_service.rollback_rows(sessionmaker, tools=tools, instance_id=instance_id)
    except Exception as exc:
        problems.append(describe(exc))
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id)
        ref = ref_of(row) if row is not None else (fallback[0] if fallback else None)
    if ref is not None and has_platform_resources(ref):
        try:
            await platform.destroy(ref)
        except Exception as exc:
            problems.append(f"platform destroy: {describe(exc)}")
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id, with_for_update=True)
        if row is not None and problems:
            row.state = "failed"
            row.last_error = "; ".join(problems)[:1000]
        elif row is not None:
            await session.delete(row)
    return "; ".join(problems) or None


async def destroy_instance(
    sessionmaker: Sessionmaker, *, platform: Platform, tools: dict[str, ToolProvider], instance_id: str
) -> InstanceDestroyed:
    """Under the instance's lock, so no tool provision runs between its ledger row and its
    resource (it finishes first, then its resource is revoked here; a later one sees `destroying`)."""
    async with locks.hold_instance(sessionmaker, instance_id) as held:
        return await _destroy_held(held, platform=platform, tools=tools, instance_id=instance_id)


async def _destroy_held(
    sessionmaker: Sessionmaker, *, platform: Platform, tools: dict[str, ToolProvider], instance_id: str
) -> InstanceDestroyed:
    """Tools first, then the platform, then the rows. Each step is safe to repeat after a failure."""
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id, with_for_update=True)
        if row is None:
            return InstanceDestroyed(instance_id=instance_id, destroyed=False, already_gone=True)
        row.state = "destroying"
        ref = ref_of(row)
    await ledger_service.destroy_rows(sessionmaker, tools=tools, instance_id=instance_id)
    if has_platform_resources(ref):
        try:
            await call_platform(f"platform destroy of instance {instance_id}", platform.destroy(ref))
        except UpstreamError as exc:
            await _note_error(sessionmaker, instance_id, exc.message)
            raise
    async with sessionmaker.begin() as session:
        await session.execute(delete(InstanceService).where(InstanceService.instance_id == instance_id))
        await session.execute(delete(InstanceInfra).where(InstanceInfra.instance_id == instance_id))
    log.info("instance.destroyed", instance_id=instance_id)
    return InstanceDestroyed(instance_id=instance_id, destroyed=True, already_gone=False)


async def _note_error(sessionmaker: Sessionmaker, instance_id: str, message: str) -> None:
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id)
        if row is not None:
            row.last_error = message[:1000]


async def _active_row(session: AsyncSession, instance_id: str) -> InstanceInfra:
    row = await session.scalar(
        select(InstanceInfra).where(InstanceInfra.instance_id == instance_id).with_for_update()
    )
    if row is None:
        raise NotFound(f"instance {instance_id} not found")
    if row.state != "active":
        raise Conflict(f"instance {instance_id} is {row.state}")
    return row


async def configure_instance(
    session: AsyncSession, *, platform: Platform, instance_id: str, body: ConfigureRequest
) -> OperationResult:
    reserved = sorted(RESERVED_ENV & set(body.variables))
    if reserved:
        raise BadRequest(f"variables {', '.join(reserved)} are set by services and cannot be configured")
    row = await _active_row(session, instance_id)
    ref = ref_of(row)
    await call_platform(
        f"platform configure of instance {instance_id}",
        platform.configure(ref, dict(body.variables), redeploy=body.redeploy),
    )
    apply_ref(row, ref)
    if body.redeploy:
        row.deploy_status = "deploying"
    return OperationResult(instance_id=instance_id, ok=True, deploy_status=row.deploy_status)


async def redeploy_instance(
    session: AsyncSession, *, platform: Platform, instance_id: str, body: RedeployRequest
) -> OperationResult:
    row = await _active_row(session, instance_id)
    ref = ref_of(row)
    status = await call_platform(
        f"platform redeploy of instance {instance_id}", platform.redeploy(ref, image=body.image)
    )
    apply_ref(row, ref)
    if body.image:
        row.runtime_image = body.image
    row.deploy_status = status or "deploying"
    return OperationResult(instance_id=instance_id, ok=True, deploy_status=row.deploy_status)


def _instance(row: InstanceInfra, tools: list[LedgerEntry]) -> Instance:
    return Instance(
        instance_id=row.instance_id,
        name=row.name,
        provider=row.provider,
        state=row.state,
        url=row.url,
        deploy_status=row.deploy_status,
        runtime_image=row.runtime_image,
        platform_ref=dict(row.platform_ref or {}),
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        tools=tools,
    )


async def get_instance(session: AsyncSession, *, instance_id: str) -> Instance:
    row = await session.get(InstanceInfra, instance_id)
    if row is None:
        raise NotFound(f"instance {instance_id} not found")
    ledger = await ledger_service.list_entries(session, instance_ids=[instance_id])
    return _instance(row, ledger.get(instance_id, []))


async def list_instances(
    session: AsyncSession, *, state: str | None, after: str | None, limit: int
) -> InstancePage:
    """Ordered by instance id, keyset-paged: two queries per page whatever the fleet size."""
    query = select(InstanceInfra).order_by(InstanceInfra.instance_id).limit(limit + 1)
    if state is not None:
        query = query.where(InstanceInfra.state == state)
    if after is not None:
        query = query.where(InstanceInfra.instance_id > after)
    rows = list(await session.scalars(query))
    page, more = rows[:limit], len(rows) > limit
    ids = [row.instance_id for row in page]
    ledger = await ledger_service.list_entries(session, instance_ids=ids) if ids else {}
    return InstancePage(
        instances=[_instance(row, ledger.get(row.instance_id, [])) for row in page],
        next_after=page[-1].instance_id if more else None,
    )
