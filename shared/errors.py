"""Application errors, rendered by one handler as `{"error": sentence, "kind": ClassName, "detail": ...}`.

`error` is always a sentence a person can read: the original system's clients show it to their
users as it is. `kind` is the machine-readable class beside it, and `detail` keeps what it always
held (the message, or FastAPI's list of validation problems for a 422).

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
from http import HTTPStatus
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError as SQLAlchemyInterfaceError
from starlette.exceptions import HTTPException as StarletteHTTPException


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


def as_sentence(message: str) -> str:
    """`message` as a person reads it: capitalised, ending in a full stop."""
    text = message.strip() or "Something went wrong"
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else f"{text}."


def error_body(kind: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The one error shape: a readable sentence, the machine-readable kind, and the detail (the
    message as it always was, unless a richer detail is given)."""
    return {"error": as_sentence(message), "kind": kind, "detail": message if detail is None else detail}


async def _render_app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(
        error_body(type(exc).__name__, exc.message), status_code=exc.status_code, headers=exc.headers()
    )


# Starlette's own refusals (no such route, wrong method) by their status, in the same shape.
_HTTP_KINDS = {404: "NotFound", 405: "MethodNotAllowed"}


async def _render_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    kind = _HTTP_KINDS.get(exc.status_code, HTTPStatus(exc.status_code).phrase.replace(" ", ""))
    return JSONResponse(
        error_body(kind, message, exc.detail), status_code=exc.status_code, headers=exc.headers
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


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    # FastAPI prefixes where the value came from ("body", "query", "header"); people name fields.
    parts = [str(part) for part in loc]
    if parts and parts[0] in ("body", "query", "header", "path", "cookie"):
        parts = parts[1:]
    return ".".join(parts)


def validation_sentence(errors: list[dict[str, Any]]) -> str:
    """The first problem of a 422 as a sentence a person can read (with how many more there are)."""
    if not errors:
        return "The request is not valid."
    first = errors[0]
    field = _field_name(first.get("loc", ()))
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        sentence = "The request body is not valid JSON."
    elif kind == "missing":
        sentence = f"The field '{field}' is required." if field else "The request body is required."
    elif field:
        sentence = f"The field '{field}' is not valid: {first.get('msg', 'invalid value')}."
    else:
        sentence = f"The request is not valid: {first.get('msg', 'invalid value')}."
    more = len(errors) - 1
    if more:
        sentence += f" ({more} more problem{'s' if more > 1 else ''} in the request.)"
    return sentence


async def _render_validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's own 422 list stays in `detail` (what the OpenAPI schemas declare), made safe to
    encode whatever the input held, with the first problem as the readable `error`."""
    assert isinstance(exc, RequestValidationError)
    problems = _encodable(jsonable_encoder(exc.errors()))
    return JSONResponse(
        error_body("ValidationError", _encodable(validation_sentence(problems)), problems), status_code=422
    )


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
    app.add_exception_handler(StarletteHTTPException, _render_http_exception)
    app.add_exception_handler(RequestValidationError, _render_validation_error)
    for kind in (DBAPIError, *_LOST_CONNECTION):
        app.add_exception_handler(kind, _render_database_error)
