"""Application errors, rendered by one handler as `{"error": "<ClassName>", "detail": "<message>"}`.

    AppError (500)
    ├── BadRequest (400)
    ├── Unauthorized (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    ├── UpstreamError (502)      a dependency answered badly
    └── Unavailable (503)        try again later (carries retry_after)

Provider failures raised inside services are `TransientError` (retry on the next tick)
or `PermanentError` (mark the instance failed); both are UpstreamErrors on the wire.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class AppError(Exception):
    status_code = 500

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def headers(self) -> dict[str, str] | None:
        return None


class BadRequest(AppError):
    status_code = 400


class Unauthorized(AppError):
    status_code = 401

    def headers(self) -> dict[str, str] | None:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(AppError):
    status_code = 403


class NotFound(AppError):
    status_code = 404


class Conflict(AppError):
    status_code = 409


class UpstreamError(AppError):
    status_code = 502


class TransientError(UpstreamError):
    """Worth retrying later: rate limits, timeouts, 5xx."""


class PermanentError(UpstreamError):
    """Retrying will not help: bad credentials, invalid input, quota exhausted."""


class Unavailable(AppError):
    status_code = 503

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)}


ERRORS_BY_NAME: dict[str, type[AppError]] = {
    cls.__name__: cls
    for cls in (
        AppError,
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        Conflict,
        UpstreamError,
        TransientError,
        PermanentError,
        Unavailable,
    )
}


def error_body(error: str, detail: Any) -> dict[str, Any]:
    return {"error": error, "detail": detail}


async def _render_app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(
        error_body(type(exc).__name__, exc.message), status_code=exc.status_code, headers=exc.headers()
    )


def install_error_handlers(app: FastAPI) -> None:
    """Render every AppError as JSON; FastAPI's own 422 for bad bodies stays as it is."""
    app.add_exception_handler(AppError, _render_app_error)
