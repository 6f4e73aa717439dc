"""The dashboard's read-only templates page (issue 13, first step): each live template and its
current version, from the pool's database. Env shows names only: values are not secrets (the API
refuses secret-looking ones) but need not be on a screen."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from pool.dashboard.router import SessionAuth, render, require_session
from pool.templates import service as templates_service
from shared.db import SessionDep

router = APIRouter(prefix="/dashboard", include_in_schema=False, dependencies=[Depends(require_session)])


@router.get("/templates")
async def templates(request: Request, db: SessionDep, session: SessionAuth) -> Response:
    rows = await templates_service.list_templates(db, owner=None, visibility=None, archived=False)
    return render(request, "templates.html", {"csrf_token": session.csrf, "templates": rows})
