"""Upgrade (DESIGN.md §11): roll one claimed agent to its template's current version, an explicit
operator action (rollouts never touch claimed instances). Services redeploys the instance on its
own platform with the version's image (`POST /redeploy/{id}`); the agent's conversation lives in
its data, so it comes back serving the same one.

The pool records the new version only once services accepted the redeploy, conditional on the
version it read, so a failed call records nothing and two concurrent upgrades record once. No
database connection is held while services is called.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from pool.deps import PoolState
from pool.instances.schemas import Upgraded
from pool.models import Instance as InstanceRow
from pool.models import Template as TemplateRow
from pool.models import TemplateVersion as VersionRow
from pool.status import BOUND
from shared.errors import Conflict, NotFound, UpstreamError
from shared.logging import get_logger

log = get_logger("pool.instances.upgrade")


async def _version(session: AsyncSession, template_id: str, version: int) -> VersionRow | None:
    return await session.get(VersionRow, (template_id, version))


async def upgrade_instance(pool: PoolState, instance_id: str) -> Upgraded:
    async with pool["sessionmaker"]() as session:
        row = await session.get(InstanceRow, instance_id)
        if row is None:
            raise NotFound(f"no instance {instance_id}")
        if row.status not in BOUND:
            raise Conflict(
                f"instance {instance_id} is {row.status}: only an agent is upgraded "
                "(idle instances follow their template's rollout)"
            )
        template = await session.get(TemplateRow, row.template_id)
        if template is None:
            raise Conflict(f"instance {instance_id}'s template {row.template_id} no longer exists")
        current = await _version(session, template.id, template.current_version)
        assert current is not None, "a template always has its current version"
        if row.template_version == current.version:
            raise Conflict(
                f"instance {instance_id} is already on version {current.version} of template {template.id}"
            )
        running = await _version(session, template.id, row.template_version)
        from_version = row.template_version
    if current.image is None and running is not None and running.image is not None:
        # A redeploy without an image keeps the one the instance runs: it would not be the new version.
        raise Conflict(
            f"version {current.version} of template {template.id} names no image, and the instance runs "
            f"{running.image}: a redeploy cannot roll it back to the deployment's image"
        )
    try:
        result = await pool["services"].redeploy_instance(instance_id, image=current.image)
    except NotFound as exc:
        raise UpstreamError(f"services has no instance {instance_id}: {exc.message}") from exc
    async with pool["sessionmaker"]() as session, session.begin():
        recorded = await session.execute(
            update(InstanceRow)
            .where(InstanceRow.id == instance_id, InstanceRow.template_version == from_version)
            .values(template_version=current.version)
        )
    if recorded.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"instance {instance_id} changed meanwhile (removed, or upgraded by another call)")
    log.info(
        "instance.upgraded",
        instance_id=instance_id,
        template_id=template.id,
        from_version=from_version,
        to_version=current.version,
    )
    return Upgraded(
        instance_id=instance_id,
        template_id=template.id,
        from_version=from_version,
        to_version=current.version,
        image=current.image,
        deploy_status=result.deploy_status,
    )
