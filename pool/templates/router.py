from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from pool.auth import OperatorAuth
from pool.deps import PoolDep
from pool.templates import service, sync
from pool.templates.schemas import (
    TEMPLATE_ID_PATTERN,
    Owner,
    Template,
    TemplateCreate,
    TemplateFork,
    TemplateSynced,
    TemplateUpdate,
    TemplateVersion,
    Visibility,
)
from shared.db import SessionDep

router = APIRouter(prefix="/api/templates", tags=["templates"], dependencies=[OperatorAuth])

TemplateIdPath = Annotated[str, Path(pattern=TEMPLATE_ID_PATTERN)]
VersionPath = Annotated[int, Path(ge=1, le=1_000_000)]


@router.get("", response_model=list[Template])
async def list_templates(
    session: SessionDep,
    owner: Annotated[Owner | None, Query()] = None,
    visibility: Visibility | None = None,
    archived: bool = False,
) -> list[Template]:
    """Templates with their current version, oldest first; archived ones only with `archived=true`."""
    return await service.list_templates(session, owner=owner, visibility=visibility, archived=archived)


@router.post("", response_model=Template, status_code=201)
async def create(body: TemplateCreate, session: SessionDep, pool: PoolDep) -> Template:
    """Create a template and its version 1 (tools are checked against services' registry)."""
    return await service.create_template(session, pool["services"], body)


@router.get("/{template_id}", response_model=Template)
async def get(template_id: TemplateIdPath, session: SessionDep) -> Template:
    """One template with its current version."""
    return await service.get_template(session, template_id)


@router.patch("/{template_id}", response_model=Template)
async def update(
    template_id: TemplateIdPath, body: TemplateUpdate, session: SessionDep, pool: PoolDep
) -> Template:
    """Change a template: version fields make a new version; `name` and `visibility` change in place."""
    return await service.update_template(session, pool["services"], template_id, body)


@router.post("/{template_id}/archive", response_model=Template)
async def archive(template_id: TemplateIdPath, session: SessionDep) -> Template:
    """Archive a template (hidden from lists, its slug free again); the default template stays (409)."""
    return await service.archive_template(session, template_id)


@router.post("/{template_id}/fork", response_model=Template, status_code=201)
async def fork(template_id: TemplateIdPath, body: TemplateFork, session: SessionDep) -> Template:
    """Fork a public template (or one's own) into a private one of `owner`, from its current version."""
    return await service.fork_template(session, template_id, body)


@router.get("/{template_id}/versions", response_model=list[TemplateVersion])
async def versions(template_id: TemplateIdPath, session: SessionDep) -> list[TemplateVersion]:
    """Every version of a template, oldest first."""
    return await service.list_versions(session, template_id)


@router.get("/{template_id}/versions/{version}", response_model=TemplateVersion)
async def version(template_id: TemplateIdPath, version: VersionPath, session: SessionDep) -> TemplateVersion:
    """One version of a template."""
    return await service.get_version(session, template_id, version)


@router.post("/{template_id}/sync", response_model=TemplateSynced)
async def sync_agents(template_id: TemplateIdPath, pool: PoolDep) -> TemplateSynced:
    """Push the template's current instructions to every agent claimed from it, through the running
    instance (never a redeploy). Each agent is reported: synced, skipped (with the reason, e.g. its
    runtime lacks the `instructions` capability) or failed (it did not answer); 409 when the current
    version has no instructions."""
    return await sync.sync_template(pool, template_id)
