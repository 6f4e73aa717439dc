"""The sweep: compare the ledger with what exists at each provider and with the pool's instances.

Order matters: first finish ledger rows stuck `creating`/`destroying`/`failed` past the grace
period whose instance no operation holds (`services.locks.hold_instance`: a provision still
waiting on its vendor keeps its row), revoking what they recorded and marking them destroyed;
then list each provider's inventory and remove resources with our name prefix that no live row
knows and that are older than the grace period. A resource younger than that may belong to a
provision still in flight (made at the provider, row not yet updated), so it is only reported.
Resources the ledger has but the provider lacks, and instances the pool does not know, are
reported, never acted on: the pool owns lifecycles.
Last, when given the platforms, what each runs under our names with no `instance_infra` row of
that platform is destroyed past the grace period (`services/sweep/platform.py`).

One sweep runs at a time across replicas: a session-level `pg_try_advisory_lock`; a replica that
does not get it returns at once with `ran=false`. Every age is measured against the database's
clock, read once per sweep: rows carry its timestamps, and a replica whose clock runs ahead would
otherwise judge young rows and resources old.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import locks
from services.config import Settings
from services.ledger import service as ledger_service
from services.models import InstanceInfra, InstanceService
from services.platforms.registry import Platforms
from services.sweep.platform import sweep_platforms
from services.sweep.report import Orphan, SweepReport, reason
from services.tools.base import InventoryItem, InventoryProvider, ToolProvider
from shared.http import call_timeout
from shared.logging import get_logger

log = get_logger(__name__)
STUCK = ("creating", "destroying", "failed")
PoolIds = Callable[[], Awaitable[set[str] | None]]


class SweepSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SERVICES_SWEEP_", extra="ignore")

    # The pool's operator key, to list its instances; empty skips that comparison.
    pool_api_key: str = ""
    pool_timeout_seconds: float = Field(
        30.0, gt=0, description="Timeout of the sweep's listing of the pool's instances."
    )


async def sweep_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    tools: dict[str, ToolProvider],
    platforms: Platforms,
    settings: Settings,
    http: httpx.AsyncClient,
) -> SweepReport:
    """One sweep with the app's settings, its HTTP client and its database (the route and the loop)."""
    sweep = SweepSettings()
    pool_key = sweep.pool_api_key
    pool_ids = (
        pool_lister(http, settings.pool_url, pool_key, sweep.pool_timeout_seconds) if pool_key else None
    )
    return await run_sweep(
        sessionmaker,
        tools=tools,
        grace_seconds=settings.sweep_grace_seconds,
        pool_instance_ids=pool_ids,
        platforms=platforms,
    )


async def run_sweep(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    tools: dict[str, ToolProvider],
    grace_seconds: float,
    pool_instance_ids: PoolIds | None = None,
    platforms: Platforms | None = None,
) -> SweepReport:
    async with sessionmaker() as lock_session:
        if not await lock_session.scalar(select(func.pg_try_advisory_lock(locks.SWEEP_KEY))):
            return SweepReport(ran=False)
        try:
            report = SweepReport(ran=True)
            now = await lock_session.scalar(select(func.now()))
            assert now is not None
            cutoff = now - timedelta(seconds=grace_seconds)
            await _finish_stuck_rows(sessionmaker, tools=tools, now=now, cutoff=cutoff, report=report)
            for name, tool in sorted(tools.items()):
                if isinstance(tool, InventoryProvider):
                    await _sweep_tool(
                        sessionmaker, name=name, tool=tool, now=now, cutoff=cutoff, report=report
                    )
            if pool_instance_ids is not None:
                await _compare_with_pool(sessionmaker, pool_instance_ids, report)
            if platforms is not None:
                await sweep_platforms(
                    sessionmaker, platforms=platforms, now=now, cutoff=cutoff, report=report
                )
        finally:
            await lock_session.execute(select(func.pg_advisory_unlock(locks.SWEEP_KEY)))
    log.info("sweep.done", orphans=len(report.orphans), removed=report.removed(), errors=len(report.errors))
    return report


async def _finish_stuck_rows(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    tools: dict[str, ToolProvider],
    now: datetime,
    cutoff: datetime,
    report: SweepReport,
) -> None:
    async with sessionmaker() as session:
        rows = list(
            await session.scalars(
                select(InstanceService).where(
                    InstanceService.status.in_(STUCK), InstanceService.updated_at < cutoff
                )
            )
        )
    for row in rows:
        age = (now - row.updated_at).total_seconds()
        orphan = Orphan("stuck_row", row.tool_id, row.resource_id, row.instance_id, age, "removed")
        try:
            async with locks.hold_instance(sessionmaker, row.instance_id, wait=None) as held:
                await _finish_row(held, tools=tools, row=row)
        except locks.InstanceBusy:
            orphan.action = "kept (an operation on its instance is running)"
        except Exception as exc:
            orphan.action = f"failed: {reason(exc)}"
            report.errors.append(f"row {row.id}: {reason(exc)}")
        report.orphans.append(orphan)


async def _finish_row(
    sessionmaker: async_sessionmaker[AsyncSession], *, tools: dict[str, ToolProvider], row: InstanceService
) -> None:
    """Under the instance's lock: nobody is making or destroying this row's resource right now."""
    if row.resource_id is not None:
        await ledger_service.destroy_row(sessionmaker, tools=tools, row_id=row.id)
        return
    # Nothing recorded to revoke; whatever the provider made is found by name below.
    async with sessionmaker.begin() as session:
        await session.execute(
            update(InstanceService)
            .where(
                InstanceService.id == row.id,
                InstanceService.status == row.status,
                InstanceService.updated_at == row.updated_at,
            )
            .values(status="destroyed", env_value=None)
        )


async def _sweep_tool(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    name: str,
    tool: InventoryProvider,
    now: datetime,
    cutoff: datetime,
    report: SweepReport,
) -> None:
    try:
        items = await tool.inventory()
    except Exception as exc:
        report.errors.append(f"{name} inventory: {reason(exc)}")
        return
    async with sessionmaker() as session:
        rows = await session.execute(
            select(InstanceService.resource_id, InstanceService.instance_id).where(
                InstanceService.tool_id == name,
                InstanceService.status != "destroyed",
                InstanceService.resource_id.is_not(None),
            )
        )
        live = {str(resource_id): instance_id for resource_id, instance_id in rows}
    at_provider = {item.resource_id for item in items}
    for item in items:
        if item.resource_id not in live:
            report.orphans.append(await _remove_unknown(name, tool, item, now, cutoff, report))
    for resource_id, instance_id in live.items():
        if resource_id not in at_provider:
            report.orphans.append(
                Orphan("missing_at_provider", name, resource_id, instance_id, None, "reported")
            )


async def _remove_unknown(
    name: str,
    tool: InventoryProvider,
    item: InventoryItem,
    now: datetime,
    cutoff: datetime,
    report: SweepReport,
) -> Orphan:
    # The vendor's timestamp against the database's clock: the one clock services trusts.
    age = (now - item.created_at).total_seconds() if item.created_at else None
    orphan = Orphan("unknown_at_provider", name, item.resource_id, item.instance_id, age, "removed")
    if item.created_at is None or item.created_at > cutoff:
        orphan.action = "kept (younger than grace)" if item.created_at else "reported"
        return orphan
    try:
        await tool.revoke(item.resource_id, dict(item.meta))
        log.warning(
            "sweep.orphan_removed", tool_id=name, resource_id=item.resource_id, instance_id=item.instance_id
        )
    except Exception as exc:
        orphan.action = f"failed: {reason(exc)}"
        report.errors.append(f"{name} {item.resource_id}: {reason(exc)}")
    return orphan


async def _compare_with_pool(
    sessionmaker: async_sessionmaker[AsyncSession], pool_instance_ids: PoolIds, report: SweepReport
) -> None:
    pool_ids = await pool_instance_ids()
    if pool_ids is None:
        return
    report.pool_compared = True
    async with sessionmaker() as session:
        ours = set(await session.scalars(select(InstanceInfra.instance_id)))
    for instance_id in sorted(ours - pool_ids):
        report.orphans.append(Orphan("not_in_pool", None, None, instance_id, None, "reported"))
    for instance_id in sorted(pool_ids - ours):
        report.orphans.append(Orphan("not_in_services", None, None, instance_id, None, "reported"))


def pool_lister(http: httpx.AsyncClient, pool_url: str, api_key: str, timeout: float) -> PoolIds:
    """Instance ids from the pool's operator API, or None when the pool cannot be asked."""

    async def list_ids() -> set[str] | None:
        try:
            response = await http.get(
                f"{pool_url.rstrip('/')}/api/pool/instances",
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=call_timeout(timeout),
            )
            response.raise_for_status()
            return {str(item["id"]) for item in response.json()}
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.warning("sweep.pool_unreachable", error=type(exc).__name__)
            return None

    return list_ids
