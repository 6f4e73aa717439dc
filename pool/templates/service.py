"""Templates: create, read, list, change (a new version), archive, fork. Versions are written
once; the current version is the template's `current_version`. Nothing here creates or claims
instances yet (issue 13's next steps)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pool.models import Template as TemplateRow
from pool.models import TemplateVersion as VersionRow
from pool.services_client import ServicesClient
from pool.templates import rollouts
from pool.templates.schemas import (
    DEFAULT_TEMPLATE_ID,
    PoolPolicy,
    Template,
    TemplateCreate,
    TemplateFork,
    TemplateSpec,
    TemplateUpdate,
    TemplateVersion,
    env_problem,
)
from shared.errors import BadRequest, Conflict, NotFound
from shared.ids import new_instance_id

TEMPLATE_FIELDS = {"name", "visibility"}
SPEC_FIELDS = set(TemplateSpec.model_fields)


def new_template_id() -> str:
    return f"tpl_{new_instance_id()}"


def _version_view(row: VersionRow) -> TemplateVersion:
    return TemplateVersion(
        template_id=row.template_id,
        version=row.version,
        image=row.image,
        tools=row.tools,
        agent_name=row.agent_name,
        instructions=row.instructions,
        model=row.model,
        env=row.env,
        resources=row.resources,
        pool_policy=PoolPolicy(
            min_idle=row.min_idle,
            max_idle=row.max_idle,
            sizing=row.sizing,
            schedules=row.schedules or [],
            idle_hours_per_day=row.idle_hours_per_day,
            max_idle_age_seconds=row.max_idle_age_seconds,
        ),
        owner_agent_limit=row.owner_agent_limit,
        rollout={"strategy": row.rollout_strategy, **row.rollout},
        created_at=row.created_at,
    )


def _view(row: TemplateRow, current: VersionRow) -> Template:
    return Template(
        id=row.id,
        slug=row.slug,
        name=row.name,
        owner=row.owner,
        visibility=row.visibility,
        forked_from=row.forked_from,
        forked_from_version=row.forked_from_version,
        current_version=row.current_version,
        archived_at=row.archived_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        current=_version_view(current),
    )


def _version_row(template_id: str, version: int, spec: TemplateSpec) -> VersionRow:
    rollout = spec.rollout.model_dump(by_alias=True)
    return VersionRow(
        template_id=template_id,
        version=version,
        image=spec.image,
        tools=spec.tools,
        agent_name=spec.agent_name,
        instructions=spec.instructions,
        model=spec.model,
        env=spec.env,
        resources=spec.resources,
        min_idle=spec.pool_policy.min_idle,
        max_idle=spec.pool_policy.max_idle,
        sizing=spec.pool_policy.sizing,
        schedules=spec.pool_policy.schedules or None,
        idle_hours_per_day=spec.pool_policy.idle_hours_per_day,
        max_idle_age_seconds=spec.pool_policy.max_idle_age_seconds,
        owner_agent_limit=spec.owner_agent_limit,
        rollout_strategy=rollout.pop("strategy"),
        rollout=rollout,
    )


def check_env(env: dict[str, str]) -> None:
    problem = env_problem(env)
    if problem is not None:
        raise BadRequest(problem)


async def check_tools(services: ServicesClient, tools: list[str] | None) -> None:
    """Tools must be ones services can provision now: its registry lists the configured ones, so a
    template cannot name a tool every create from it would fail on."""
    if not tools:
        return
    configured = {tool.id for tool in (await services.registry()).tools if tool.configured}
    unknown = sorted(set(tools) - configured)
    if unknown:
        known = ", ".join(sorted(configured)) or "none"
        raise BadRequest(f"unknown or unconfigured tools: {', '.join(unknown)} (configured: {known})")


async def _flush_or_conflict(session: AsyncSession, slug: str, owner: str) -> None:
    try:
        await session.flush()
    except IntegrityError as exc:
        if "uq_templates_owner_slug_live" in str(exc.orig):
            raise Conflict(f"owner {owner!r} already has a template with slug {slug!r}") from None
        raise


async def _row(session: AsyncSession, template_id: str, *, lock: bool = False) -> TemplateRow:
    # populate_existing: a row this session wrote is read afresh (server defaults, Core updates).
    statement = (
        select(TemplateRow).where(TemplateRow.id == template_id).execution_options(populate_existing=True)
    )
    row = (await session.execute(statement.with_for_update() if lock else statement)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no template {template_id}")
    return row


async def _current(session: AsyncSession, row: TemplateRow) -> VersionRow:
    version = await session.get(VersionRow, (row.id, row.current_version), populate_existing=True)
    assert version is not None, "a template always has its current version"
    return version


async def get_template(session: AsyncSession, template_id: str) -> Template:
    row = await _row(session, template_id)
    return _view(row, await _current(session, row))


async def list_templates(
    session: AsyncSession, *, owner: str | None, visibility: str | None, archived: bool
) -> list[Template]:
    statement = (
        select(TemplateRow, VersionRow)
        .join(
            VersionRow,
            (VersionRow.template_id == TemplateRow.id) & (VersionRow.version == TemplateRow.current_version),
        )
        .order_by(TemplateRow.created_at, TemplateRow.id)
    )
    if owner is not None:
        statement = statement.where(TemplateRow.owner == owner)
    if visibility is not None:
        statement = statement.where(TemplateRow.visibility == visibility)
    if not archived:
        statement = statement.where(TemplateRow.archived_at.is_(None))
    return [_view(row, version) for row, version in (await session.execute(statement)).all()]


async def create_template(session: AsyncSession, services: ServicesClient, body: TemplateCreate) -> Template:
    check_env(body.env)
    await check_tools(services, body.tools)
    row = TemplateRow(
        id=new_template_id(), slug=body.slug, name=body.name, owner=body.owner, visibility=body.visibility
    )
    session.add(row)
    await _flush_or_conflict(session, body.slug, body.owner)
    session.add(_version_row(row.id, 1, body))
    await session.flush()
    return await get_template(session, row.id)


async def update_template(
    session: AsyncSession, services: ServicesClient, template_id: str, body: TemplateUpdate
) -> Template:
    """Locks the template row, so two concurrent changes make versions n+1 and n+2, never a clash.
    A new version is numbered past every version written (after a rollback, past the rolled-back
    one) and made from the current version."""
    row = await _row(session, template_id, lock=True)
    if row.archived_at is not None:
        raise Conflict(f"template {template_id} is archived")
    previous = row.current_version  # the update below refreshes `row`
    given = body.model_fields_set
    changes: dict[str, Any] = {name: getattr(body, name) for name in given & TEMPLATE_FIELDS}
    if given - TEMPLATE_FIELDS:
        current = _version_view(await _current(session, row))
        spec = TemplateSpec.model_validate(
            {**current.model_dump(include=SPEC_FIELDS), **body.model_dump(include=given - TEMPLATE_FIELDS)}
        )
        check_env(spec.env)
        await check_tools(services, spec.tools if "tools" in given else None)
        # Past every version written, not the current one: a rolled-back canary's version stays
        # written above the current version (pool.templates.rollouts), and versions are immutable.
        written = await session.scalar(
            select(func.max(VersionRow.version)).where(VersionRow.template_id == row.id)
        )
        version = max(row.current_version, written or 0) + 1
        session.add(_version_row(row.id, version, spec))
        changes["current_version"] = version
    if changes:
        await session.execute(update(TemplateRow).where(TemplateRow.id == row.id).values(**changes))
    if "current_version" in changes:
        strategy = spec.rollout.model_dump(by_alias=True)
        await rollouts.begin(session, row.id, strategy, version=changes["current_version"], previous=previous)
    await session.flush()
    return await get_template(session, template_id)


async def archive_template(session: AsyncSession, template_id: str) -> Template:
    """Archiving again answers the template as it is; the default template stays."""
    if template_id == DEFAULT_TEMPLATE_ID:
        raise Conflict("the default template cannot be archived: it is what claims get without one")
    await _row(session, template_id)
    await session.execute(
        update(TemplateRow)
        .where(TemplateRow.id == template_id, TemplateRow.archived_at.is_(None))
        .values(archived_at=func.now())
    )
    await session.flush()
    return await get_template(session, template_id)


async def fork_template(session: AsyncSession, template_id: str, body: TemplateFork) -> Template:
    """A new private template of `body.owner` whose version 1 is the source's current version. A
    private template is forkable only by its own owner; an archived one by nobody."""
    source = await _row(session, template_id)
    if source.visibility != "public" and source.owner != body.owner:
        # Not found, not forbidden: another owner's private template is not theirs to know of.
        raise NotFound(f"no template {template_id}")
    if source.archived_at is not None:
        raise Conflict(f"template {template_id} is archived")
    current = _version_view(await _current(session, source))
    slug, name = body.slug or source.slug, body.name or source.name
    row = TemplateRow(
        id=new_template_id(),
        slug=slug,
        name=name,
        owner=body.owner,
        visibility="private",
        forked_from=source.id,
        forked_from_version=source.current_version,
    )
    session.add(row)
    await _flush_or_conflict(session, slug, body.owner)
    session.add(_version_row(row.id, 1, TemplateSpec.model_validate(current.model_dump(include=SPEC_FIELDS))))
    await session.flush()
    return await get_template(session, row.id)


async def list_versions(session: AsyncSession, template_id: str) -> list[TemplateVersion]:
    await _row(session, template_id)
    statement = select(VersionRow).where(VersionRow.template_id == template_id).order_by(VersionRow.version)
    return [_version_view(row) for row in (await session.execute(statement)).scalars()]


async def get_version(session: AsyncSession, template_id: str, version: int) -> TemplateVersion:
    await _row(session, template_id)
    row = await session.get(VersionRow, (template_id, version), populate_existing=True)
    if row is None:
        raise NotFound(f"template {template_id} has no version {version}")
    return _version_view(row)
