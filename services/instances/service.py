"""Destroy, configure and redeploy instances, and the operators' reads of them (`GET /instances`);
the helpers every instance flow shares (the per-instance lock, the platform ref, platform errors).

The create is asynchronous and lives beside this module: `create.py` (accept, then make it) and
`worker.py` (the workers that make it). Destroy of an unknown instance answers 200 with
`alreadyGone: true`; destroy of a create still `queued` or `creating` cancels it: the row goes
`destroying` at once, so its worker stops at its next step and removes what it made after this
destroy looked (`create.run_create`), while this destroy removes what was recorded until then.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import locks
from services.instances.schemas import Instance, InstancePage
from services.ledger import repository as ledger_repo
from services.ledger import service as ledger_service
from services.ledger.schemas import LedgerEntry
from services.models import InstanceInfra, InstanceService
from services.platforms.base import PlatformRef
from services.platforms.registry import Platforms
from services.tools.base import ToolProvider
from shared.errors import AppError, BadRequest, Conflict, NotFound, UpstreamError
from shared.logging import get_logger
from shared.schemas import (
    ConfigureRequest,
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
    return PlatformRef(provider=row.provider or "", data=dict(row.platform_ref or {}), url=row.url)


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


async def destroy_instance(
    sessionmaker: Sessionmaker, *, platforms: Platforms, tools: dict[str, ToolProvider], instance_id: str
) -> InstanceDestroyed:
    """Under the instance's lock, so no tool provision runs between its ledger row and its
    resource (it finishes first, then its resource is revoked here; a later one sees `destroying`)."""
    async with locks.hold_instance(sessionmaker, instance_id) as held:
        return await _destroy_held(held, platforms=platforms, tools=tools, instance_id=instance_id)


async def _destroy_held(
    sessionmaker: Sessionmaker, *, platforms: Platforms, tools: dict[str, ToolProvider], instance_id: str
) -> InstanceDestroyed:
    """Tools first, then the platform, then the rows. Each step is safe to repeat after a failure."""
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id, with_for_update=True)
        if row is None:
            return InstanceDestroyed(instance_id=instance_id, destroyed=False, already_gone=True)
        # A create still queued or creating is cancelled by this mark (create.run_create).
        row.state = "destroying"
        row.create_secret = None
        ref, on = ref_of(row), row.platform
    await ledger_service.destroy_rows(sessionmaker, tools=tools, instance_id=instance_id)
    if has_platform_resources(ref):
        try:
            platform = platforms.get(on, instance_id=instance_id).platform
            await call_platform(f"platform destroy of instance {instance_id} on {on}", platform.destroy(ref))
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
    session: AsyncSession, *, platforms: Platforms, instance_id: str, body: ConfigureRequest
) -> OperationResult:
    reserved = sorted(RESERVED_ENV & set(body.variables))
    if reserved:
        raise BadRequest(f"variables {', '.join(reserved)} are set by services and cannot be configured")
    row = await _active_row(session, instance_id)
    ref = ref_of(row)
    platform = platforms.get(row.platform, instance_id=instance_id).platform
    await call_platform(
        f"platform configure of instance {instance_id}",
        platform.configure(ref, dict(body.variables), redeploy=body.redeploy),
    )
    apply_ref(row, ref)
    if body.redeploy:
        row.deploy_status = "deploying"
    return OperationResult(instance_id=instance_id, ok=True, deploy_status=row.deploy_status)


async def redeploy_instance(
    session: AsyncSession, *, platforms: Platforms, instance_id: str, body: RedeployRequest
) -> OperationResult:
    row = await _active_row(session, instance_id)
    ref = ref_of(row)
    platform = platforms.get(row.platform, instance_id=instance_id).platform
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
        platform=row.platform,
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
    ledger = await ledger_repo.list_entries(session, instance_ids=[instance_id])
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
    ledger = await ledger_repo.list_entries(session, instance_ids=ids) if ids else {}
    return InstancePage(
        instances=[_instance(row, ledger.get(row.instance_id, [])) for row in page],
        next_after=page[-1].instance_id if more else None,
    )
