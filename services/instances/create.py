"""The asynchronous create of an instance (DESIGN.md §3): accept at once, make it in a worker.

`accept_create` (the route) only records the intent: one `instance_infra` row, state `queued`,
with what a worker needs of the request (the tools; the gateway token and env, encrypted), and
answers the create's phase. A repeat answers the phase again, never a second create. A worker
(`services/instances/worker.py`) takes the row (`creating`, a lease, an attempt number) and runs
`run_create`: the tools, each in the ledger before its vendor is called, then the platform, every
resource committed as the platform reports it; then `active` (phase `deploying`). A failure rolls
back what was made and leaves the row `failed` with the reason, which `/status/batch` reports
until the pool destroys the row.

Ownership: a worker acts on the row only while it is `creating` with the worker's attempt number.
A destroy (state `destroying`, or the row gone) or a retake after the lease ran out (a new
attempt number) ends it: the worker then removes only the platform resources its own attempt
made, and leaves the row and the ledger to whoever owns them now. A retaken create first removes
the platform resources the dead attempt recorded (a half-made platform service cannot be
resumed) and keeps its tools (provisioning is idempotent).
"""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from services.config import Settings
from services.instances.fallthrough import MadeSoFar, create_placed
from services.instances.service import (
    Sessionmaker,
    apply_ref,
    describe,
    has_platform_resources,
    instance_lock,
    ref_of,
)
from services.ledger import repository as ledger_repo
from services.ledger import service as ledger_service
from services.models import InstanceInfra
from services.platforms.base import InstanceSpec, PlatformRef
from services.platforms.registry import Platforms
from services.tools.base import ToolProvider
from services.tools.registry import get_tool
from shared.auth import SecretBox, hash_token, mint_token
from shared.errors import Conflict
from shared.logging import get_logger
from shared.schemas import CreatePhase, InstanceAccepted, InstanceCreate

log = get_logger("services.instances.create")

PHASES: dict[str, CreatePhase] = {
    "queued": "queued",
    "creating": "creating",
    "active": "deploying",
    "failed": "failed",
    "destroying": "destroying",
}


def phase_of(row: InstanceInfra) -> CreatePhase:
    return PHASES.get(row.state, "creating")


async def _accepted(
    sessionmaker: Sessionmaker, instance_id: str, gateway_token: str | None = None
) -> InstanceAccepted:
    async with sessionmaker.begin() as session:
        row = await session.get_one(InstanceInfra, instance_id)
        return InstanceAccepted(
            instance_id=row.instance_id,
            name=row.name,
            phase=phase_of(row),
            url=row.url,
            deploy_status=row.deploy_status,
            error=row.last_error if row.state == "failed" else None,
            gateway_token=gateway_token,
            tools=await ledger_repo.list_resources(session, instance_id=instance_id),
        )


async def accept_create(
    sessionmaker: Sessionmaker,
    *,
    tools: dict[str, ToolProvider],
    box: SecretBox,
    settings: Settings,
    body: InstanceCreate,
) -> tuple[InstanceAccepted, bool]:
    """Record the intent (write-ahead) and answer its phase; True when this call recorded it."""
    tool_ids = list(dict.fromkeys(body.tools if body.tools is not None else settings.default_tools))
    for tool_id in tool_ids:
        get_tool(tools, tool_id)
    token = body.gateway_token or mint_token("pool_gw")
    instance_id = body.instance_id
    try:
        async with sessionmaker.begin() as session:
            await session.execute(select(instance_lock(instance_id)))
            row = await session.get(InstanceInfra, instance_id)
            if row is not None:
                if body.gateway_token is not None and row.gateway_token_hash != hash_token(
                    body.gateway_token
                ):
                    raise Conflict(f"instance {instance_id} exists with another gateway token")
                new = False
            else:
                secret = json.dumps({"gateway_token": token, "env": body.env})
                session.add(
                    InstanceInfra(
                        instance_id=instance_id,
                        name=body.name,
                        # Its platform is chosen when a worker reaches the platform step.
                        state="queued",
                        # The template version's image, else this deployment's.
                        runtime_image=body.image or settings.runtime_image,
                        gateway_token_hash=hash_token(token),
                        gateway_token_enc=box.encrypt(token),  # for inbound notifications
                        create_tools=tool_ids,
                        create_secret=box.encrypt(secret),
                    )
                )
                new = True
    except IntegrityError:
        raise Conflict(f"instance {instance_id} is being recorded by another request") from None
    if new:
        log.info("instance.create.queued", instance_id=instance_id, tools=",".join(tool_ids))
    handed = token if new and body.gateway_token is None else None
    return await _accepted(sessionmaker, instance_id, gateway_token=handed), new


def _owned(row: InstanceInfra | None, attempt: int) -> bool:
    return row is not None and row.state == "creating" and row.create_attempts == attempt


async def run_create(
    sessionmaker: Sessionmaker,
    *,
    platforms: Platforms,
    tools: dict[str, ToolProvider],
    box: SecretBox,
    settings: Settings,
    instance_id: str,
    attempt: int,
) -> None:
    """Make a create a worker took (attempt number `attempt`). Never raises for the create's own
    failures: they end in the row (`failed` + reason)."""
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id)
        if not _owned(row, attempt) or row is None:
            return
        name, tool_ids, leftover = row.name, list(row.create_tools or []), ref_of(row)
        leftover_on = row.platform
        request = json.loads(box.decrypt(row.create_secret)) if row.create_secret else None
    if request is None:
        await _fail(sessionmaker, platforms, tools, instance_id, attempt, [], "its request was lost")
        return
    if attempt > settings.create_max_attempts:
        reason = f"gave up after {attempt - 1} attempts whose workers stopped mid-way"
        await _fail(sessionmaker, platforms, tools, instance_id, attempt, [(leftover_on, leftover)], reason)
        return
    log.info("instance.create.started", instance_id=instance_id, attempt=attempt)

    made = MadeSoFar()

    async def on_progress(ref: PlatformRef) -> None:
        made.ref = ref
        async with sessionmaker.begin() as session:
            row = await session.get(InstanceInfra, instance_id, with_for_update=True)
            if not _owned(row, attempt) or row is None:
                raise Conflict(f"instance {instance_id} was destroyed while it was being created")
            apply_ref(row, ref)

    step = "tools"
    try:
        if has_platform_resources(leftover):
            # A worker died mid-way: what it made at the platform cannot be finished, only removed.
            step = "removal of a stopped attempt's platform resources"
            await platforms.get(leftover_on, instance_id=instance_id).platform.destroy(leftover)
            await on_progress(PlatformRef(provider=leftover.provider, data={}, url=None))
        services_token = mint_token("svc_it")
        async with sessionmaker.begin() as session:
            row = await session.get(InstanceInfra, instance_id, with_for_update=True)
            if not _owned(row, attempt) or row is None:
                raise Conflict(f"instance {instance_id} was destroyed while it was being created")
            row.services_token_hash = hash_token(services_token)
        for tool_id in tool_ids:
            step = f"tool {tool_id}"
            await ledger_service.provision_tool(
                sessionmaker, tools=tools, box=box, instance_id=instance_id, tool_id=tool_id, reveal=False
            )
        step = "platform create"
        async with sessionmaker.begin() as session:
            row = await session.get(InstanceInfra, instance_id)
            if not _owned(row, attempt):
                raise Conflict(f"instance {instance_id} was destroyed while it was being created")
            env = {
                **request["env"],
                **await ledger_repo.tool_env(session, box=box, instance_id=instance_id),
            }
            image = row.runtime_image if row is not None else None
        env.update(
            INSTANCE_ID=instance_id,
            POOL_URL=settings.pool_url,
            SERVICES_URL=settings.callback_url,
            GATEWAY_TOKEN=request["gateway_token"],
            INSTANCE_SERVICES_TOKEN=services_token,
        )
        spec = InstanceSpec(
            instance_id=instance_id, name=name, env=env, image=image or settings.runtime_image
        )
        entry, ref = await create_placed(
            sessionmaker,
            platforms=platforms,
            settings=settings,
            instance_id=instance_id,
            attempt=attempt,
            spec=spec,
            on_progress=on_progress,
            made=made,
        )
    except Exception as exc:
        reason = f"{step} failed for instance {instance_id}: {describe(exc)}"
        log.warning("instance.create.failed", instance_id=instance_id, error=reason)
        await _fail(sessionmaker, platforms, tools, instance_id, attempt, made.pairs(), reason)
        return

    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id, with_for_update=True)
        kept = _owned(row, attempt) and row is not None
        if kept and row is not None:
            apply_ref(row, ref)
            row.state = "active"
            row.deploy_status = "deploying"
            row.last_error = None
            _done(row)
    if not kept:
        reason = f"instance {instance_id} was destroyed while it was being created"
        await _fail(sessionmaker, platforms, tools, instance_id, attempt, [(entry.name, ref)], reason)
        return
    log.info("instance.created", instance_id=instance_id, platform=entry.name, url=ref.url)


def _done(row: InstanceInfra) -> None:
    """The create ended: what only its workers needed goes (the encrypted token first)."""
    row.create_secret = None
    row.create_tools = None
    row.lease_until = None


async def _fail(
    sessionmaker: Sessionmaker,
    platforms: Platforms,
    tools: dict[str, ToolProvider],
    instance_id: str,
    attempt: int,
    made: list[tuple[str | None, PlatformRef]],
    reason: str,
) -> None:
    """Roll back, then leave the row `failed` with `reason` (the pool reads it, then destroys the
    row). When the create is no longer this attempt's (destroyed, or taken again), only the
    platform resources this attempt made are removed: the row and the ledger have another owner."""
    async with sessionmaker.begin() as session:
        owned = _owned(await session.get(InstanceInfra, instance_id), attempt)
    problems: list[str] = []
    if owned:
        try:
            await ledger_service.rollback_rows(sessionmaker, tools=tools, instance_id=instance_id)
        except Exception as exc:
            problems.append(describe(exc))
        async with sessionmaker.begin() as session:
            row = await session.get(InstanceInfra, instance_id)
            recorded = ref_of(row) if row is not None else None
            recorded_on = row.platform if row is not None else None
        if recorded is not None and has_platform_resources(recorded):
            made = [(recorded_on, recorded)]
    for on, ref in made[:1]:
        if has_platform_resources(ref):
            try:
                await platforms.get(on, instance_id=instance_id).platform.destroy(ref)
            except Exception as exc:
                problems.append(f"platform destroy: {describe(exc)}")
    if problems:
        log.warning("instance.create.rollback_incomplete", instance_id=instance_id, error="; ".join(problems))
    if not owned:
        return
    async with sessionmaker.begin() as session:
        row = await session.get(InstanceInfra, instance_id, with_for_update=True)
        if row is None or not _owned(row, attempt):
            return
        row.state = "failed"
        if problems:
            reason += (
                f"; cleanup incomplete ({'; '.join(problems)}), DELETE /destroy/{instance_id} finishes it"
            )
        else:
            row.platform_ref = {}
        row.last_error = reason[:1000]
        _done(row)
