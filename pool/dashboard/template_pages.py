"""The dashboard's template pages (issue 13): the list with each template's instance counts, a
template with its versions and what each changed, create and edit forms (an edit that changes a
version field makes a new version), archive and fork.

Plain HTML forms posted to this process (session cookie, the form's `csrf_token`), each calling one
function of pool.templates.service, the same ones /api/templates calls. A refused post (400 with a
sentence, 409, services down for the tools check) shows the form again with the sentence and what
was typed, at the error's status; the transaction is rolled back first, so nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from pool.dashboard import template_forms as forms
from pool.dashboard import template_views as views
from pool.dashboard.router import SessionAuth, render, require_session, secure
from pool.deps import PoolDep
from pool.templates import service as templates_service
from pool.templates.router import TemplateIdPath
from pool.templates.schemas import DEFAULT_OWNER, DEFAULT_TEMPLATE_ID, Template
from shared.db import SessionDep
from shared.errors import AppError, NotFound, as_sentence

router = APIRouter(prefix="/dashboard", include_in_schema=False, dependencies=[Depends(require_session)])


def _see(url: str) -> Response:
    return secure(RedirectResponse(url, status_code=303))


async def _posted(request: Request) -> dict[str, str]:
    return forms.text_fields(await request.form())


async def _refused(db: AsyncSession, exc: AppError) -> tuple[str, int]:
    # Whatever the service flushed before refusing is undone: the session would commit it otherwise.
    await db.rollback()
    return as_sentence(exc.message), exc.status_code


@router.get("/templates")
async def templates(
    request: Request, db: SessionDep, session: SessionAuth, archived: Annotated[bool, Query()] = False
) -> Response:
    rows = await templates_service.list_templates(db, owner=None, visibility=None, archived=archived)
    context = {
        "csrf_token": session.csrf,
        "templates": rows,
        "counts": await views.template_counts(db, request.state.settings),
        "archived": archived,
    }
    return render(request, "templates.html", context)


def _form_page(
    request: Request,
    session: SessionAuth,
    values: Mapping[str, Any],
    *,
    template: Template | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "csrf_token": session.csrf,
        "template": template,
        "values": values,
        "error": error,
        "strategies": forms.STRATEGIES,
    }
    return render(request, "template_form.html", context, status_code)


@router.get("/templates/new")
async def new_form(request: Request, session: SessionAuth) -> Response:
    return _form_page(request, session, forms.form_values())


@router.post("/templates/new")
async def create(request: Request, db: SessionDep, pool: PoolDep, session: SessionAuth) -> Response:
    fields = await _posted(request)
    try:
        created = await templates_service.create_template(db, pool["services"], forms.create_body(fields))
    except AppError as exc:
        error, status = await _refused(db, exc)
        return _form_page(request, session, forms.redisplayed(fields), error=error, status_code=status)
    return _see(f"/dashboard/templates/{created.id}")


async def _detail_page(
    request: Request,
    db: AsyncSession,
    session: SessionAuth,
    template_id: str,
    *,
    fork_values: Mapping[str, str] | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    try:
        template = await templates_service.get_template(db, template_id)
    except NotFound as exc:
        missing: dict[str, Any] = {"csrf_token": session.csrf, "missing": as_sentence(exc.message)}
        return render(request, "template_detail.html", missing, 404)
    versions = await templates_service.list_versions(db, template_id)
    counts = await views.template_counts(db, request.state.settings)
    # A public template forks into the operator's own; a private one only into its owner's.
    owner = DEFAULT_OWNER if template.visibility == "public" else template.owner
    context: dict[str, Any] = {
        "csrf_token": session.csrf,
        "template": template,
        "versions": views.version_views(versions),
        "counts": counts.get(template.id, views.TemplateCounts()),
        "can_archive": template.archived_at is None and template.id != DEFAULT_TEMPLATE_ID,
        "fork": fork_values or {"owner": owner},
        "error": error,
    }
    return render(request, "template_detail.html", context, status_code)


@router.get("/templates/{template_id}")
async def detail(
    request: Request, template_id: TemplateIdPath, db: SessionDep, session: SessionAuth
) -> Response:
    return await _detail_page(request, db, session, template_id)


@router.get("/templates/{template_id}/edit")
async def edit_form(
    request: Request, template_id: TemplateIdPath, db: SessionDep, session: SessionAuth
) -> Response:
    try:
        template = await templates_service.get_template(db, template_id)
    except NotFound:
        return await _detail_page(request, db, session, template_id)  # its "no such template" page
    if template.archived_at is not None:
        return await _detail_page(
            request, db, session, template_id, error="An archived template cannot change."
        )
    return _form_page(request, session, forms.form_values(template, template.current), template=template)


@router.post("/templates/{template_id}/edit")
async def edit(
    request: Request, template_id: TemplateIdPath, db: SessionDep, pool: PoolDep, session: SessionAuth
) -> Response:
    try:
        template = await templates_service.get_template(db, template_id)
    except NotFound:
        return await _detail_page(request, db, session, template_id)
    fields = await _posted(request)
    try:
        body = forms.update_body(template, fields)
        await templates_service.update_template(db, pool["services"], template_id, body)
    except AppError as exc:
        error, status = await _refused(db, exc)
        # The slug and owner cannot change; the page shows the template's own.
        values = {**forms.redisplayed(fields), "slug": template.slug, "owner": template.owner}
        return _form_page(request, session, values, template=template, error=error, status_code=status)
    return _see(f"/dashboard/templates/{template_id}")


@router.post("/templates/{template_id}/archive")
async def archive(
    request: Request, template_id: TemplateIdPath, db: SessionDep, session: SessionAuth
) -> Response:
    try:
        await templates_service.archive_template(db, template_id)
    except AppError as exc:
        error, status = await _refused(db, exc)
        return await _detail_page(request, db, session, template_id, error=error, status_code=status)
    return _see(f"/dashboard/templates/{template_id}")


@router.post("/templates/{template_id}/fork")
async def fork(
    request: Request, template_id: TemplateIdPath, db: SessionDep, session: SessionAuth
) -> Response:
    fields = await _posted(request)
    try:
        forked = await templates_service.fork_template(db, template_id, forms.fork_body(fields))
    except AppError as exc:
        error, status = await _refused(db, exc)
        return await _detail_page(
            request, db, session, template_id, fork_values=fields, error=error, status_code=status
        )
    return _see(f"/dashboard/templates/{forked.id}")
