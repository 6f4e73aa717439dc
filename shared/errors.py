"""Application errors, rendered by one handler as `{"error": "<ClassName>", "detail": "<message>"}`.

    AppError (500)
    ├── BadRequest (400)
    ├── Unauthorized (401)
    ├── Forbidden (403)
    ├── NotFound (404)
    ├── Conflict (409)
    ├── PayloadTooLarge (413)    the body is over the app's limit (shared.edge)
    ├── UpstreamError (502)      a dependency answered badly
    └── Unavailable (503)        try again later (carries retry_after)

Provider failures raised inside services are `TransientError` (retry on the next tick)
or `PermanentError` (mark the instance failed); both are UpstreamErrors on the wire.

A database connection lost mid-request (a failover, a terminated backend, a restart) is a 503
with `Retry-After`, like any other "try again": every write is conditional or write-ahead, so a
retry finishes what the lost request began. Any other database error stays a 500: a bug.
"""

from __future__ import annotations

import math
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError as SQLAlchemyInterfaceError


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


class PayloadTooLarge(AppError):
    status_code = 413


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
        PayloadTooLarge,
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


def _encodable(value: Any) -> Any:
    """`value` as JSON can carry it: the 422 echoes the input back, and neither a lone surrogate
    (from JSON's `\\ud800` escape; written out as `\\udXXX` text) nor NaN or Infinity (written as
    text) can be encoded in an answer."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value


async def _render_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422 body (`{"detail": [...]}`, what the OpenAPI schemas declare), made safe
    to encode whatever the input held."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": _encodable(jsonable_encoder(exc.errors()))}, status_code=422)


# asyncpg's own words for "the connection is gone", seen through the claim path's raw pool.
_LOST_CONNECTION = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    # A pooled connection handed out while it still consumes the error its terminated backend sent
    # ("cannot switch to state ..; another operation is in progress"): raised before anything is sent.
    asyncpg.exceptions.InternalClientError,
    ConnectionError,
)


def database_unavailable(exc: BaseException) -> bool:
    """The database went away under the request (as opposed to refusing what it was asked)."""
    if isinstance(exc, DBAPIError):
        cause = exc.orig
        lost = isinstance(cause, _LOST_CONNECTION) or (
            cause is not None and isinstance(cause.__cause__, _LOST_CONNECTION)
        )
        return exc.connection_invalidated or isinstance(exc, SQLAlchemyInterfaceError) or lost
    return isinstance(exc, _LOST_CONNECTION)


async def _render_database_error(request: Request, exc: Exception) -> JSONResponse:
    if not database_unavailable(exc):
        raise exc
    unavailable = Unavailable("the database connection was lost; retry")
    return await _render_app_error(request, unavailable)


def install_error_handlers(app: FastAPI) -> None:
    """Render every AppError as JSON; bad input keeps FastAPI's 422 shape; a lost database
    connection is a 503."""
    app.add_exception_handler(AppError, _render_app_error)
    app.add_exception_handler(RequestValidationError, _render_validation_error)
    for kind in (DBAPIError, *_LOST_CONNECTION):
        app.add_exception_handler(kind, _render_database_error)
