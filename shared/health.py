"""`/healthz` (checks the app's database, 503 when unreachable) and `/version`, for both apps."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shared.db import ping


def app_version() -> str:
    try:
        return version("warmpool")
    except PackageNotFoundError:
        return "0.0.0"


def health_router(app_name: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz(request: Request) -> JSONResponse:
        """Liveness and database reachability."""
        if await ping(request.state.engine):
            return JSONResponse({"ok": True, "app": app_name, "database": "ok"})
        return JSONResponse({"ok": False, "app": app_name, "database": "unreachable"}, status_code=503)

    @router.get("/version")
    async def get_version() -> dict[str, str]:
        """The running version."""
        return {"app": app_name, "version": app_version()}

    return router
