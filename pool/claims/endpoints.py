"""`POST /api/pool/claim` and `POST /api/pool/claims` served as plain Starlette endpoints (issue 15).

Why not FastAPI's route: FastAPI solves a route's declared parameters on every request (the two
dependencies, the query and header parameters, the body's content type, then the response model:
validated, then serialised). On the claim, which is otherwise two statements and one HTTP call,
that was ~780 of ~1,930 Python calls per claim and about a third of the pool's CPU
(bench/findings.md, "Claim path at the physical limit"). These endpoints read the same inputs by
the same rules and call the same service functions:

- the body is read first, as FastAPI does (so `shared.edge.BodyTooLarge` counts it): parsed when the
  content type says JSON, a body that is not JSON being one 422 at once;
- then the caller must bear POOL_API_KEY (401, as `pool.auth.require_claim_caller`);
- then `?wait=` (an integer) and the `Idempotency-Key` header (its pattern) are checked and the body
  validated by the same model, every problem in one 422 in FastAPI's shape (`RequestValidationError`,
  rendered by `shared.errors`);
- the answer is the response model, serialised once.

The routes' OpenAPI description (what `/docs` shows and the fuzz tests call) is FastAPI's
declaration of the same routes in `pool.claims.router`, registered behind these: a request never
reaches it, but it answers the same (tests/pool/claims/test_endpoints.py holds the two to it).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, StringConstraints, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from pool.auth import API_KEY_CALLER
from pool.claims import resources, service
from pool.claims.schemas import IDEMPOTENCY_KEY_PATTERN, ClaimCreate, ClaimEnqueue
from pool.deps import PoolState
from shared.auth import require_bearer

M = TypeVar("M", bound=BaseModel)

_WAIT = TypeAdapter(int)
_KEY = TypeAdapter(Annotated[str, StringConstraints(pattern=IDEMPOTENCY_KEY_PATTERN)])
_MISSING = object()


async def claim(request: Request) -> Response:
    value = await _json_body(request)
    pool, caller = _authorised(request)
    errors: list[dict[str, Any]] = []
    wait = _parameter(_WAIT, request.query_params.get("wait"), ("query", "wait"), errors)
    key = _parameter(_KEY, request.headers.get("idempotency-key"), ("header", "idempotency-key"), errors)
    body = _validated(ClaimCreate, value, errors)
    if body is None or errors:
        raise RequestValidationError(errors)
    answer = await service.claim(pool, body, caller=caller, idempotency_key=key, wait_seconds=wait or 0)
    return _json(answer, 200)


async def create_claim(request: Request) -> Response:
    value = await _json_body(request)
    pool, caller = _authorised(request)
    errors: list[dict[str, Any]] = []
    key = _parameter(_KEY, request.headers.get("idempotency-key"), ("header", "idempotency-key"), errors)
    body = _validated(ClaimEnqueue, value, errors)
    if body is None or errors:
        raise RequestValidationError(errors)
    ticket = await resources.create_claim(pool, body, caller=caller, idempotency_key=key)
    return _json(ticket, 202)


ROUTES = [
    Route("/api/pool/claim", claim, methods=["POST"], include_in_schema=False),
    Route("/api/pool/claims", create_claim, methods=["POST"], include_in_schema=False),
]


def _authorised(request: Request) -> tuple[PoolState, str]:
    pool: PoolState = request.state.pool
    require_bearer(request.headers.get("authorization"), pool["settings"].api_key)
    return pool, API_KEY_CALLER


def _parameter(
    adapter: TypeAdapter[Any], raw: str | None, loc: tuple[str, str], errors: list[dict[str, Any]]
) -> Any:
    """An optional query or header parameter, validated; its problems added to `errors`."""
    if raw is None:
        return None
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        errors.extend({**error, "loc": (*loc, *error["loc"])} for error in exc.errors(include_url=False))
        return None


async def _json_body(request: Request) -> Any:
    """The body as FastAPI reads it: parsed when the content type says JSON (a body that is not
    JSON is refused at once, alone), else the bytes, which the model refuses; empty: missing."""
    raw = await request.body()
    if not raw:
        return _MISSING
    if not _is_json(request.headers.get("content-type")):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        error = {
            "type": "json_invalid",
            "loc": ("body", exc.pos),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": exc.msg},
        }
        raise RequestValidationError([error]) from exc


def _validated(model: type[M], value: Any, errors: list[dict[str, Any]]) -> M | None:
    """The body as the model; its problems added to `errors`."""
    if value is _MISSING:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required", "input": None})
        return None
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as exc:
        errors.extend({**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False))
        return None


def _is_json(content_type: str | None) -> bool:
    """`application/json` or `application/*+json`, parameters (`; charset=`) aside."""
    maintype, _, subtype = (content_type or "").partition(";")[0].strip().lower().partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))


def _json(model: BaseModel, status_code: int) -> Response:
    return Response(
        model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )
