import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from runtime.config import Settings
from runtime.deps import AgentDep, require_token
from runtime.errors import RuntimeAppError, Unauthorized
from runtime.memory import MemoryStore
from runtime.schemas import (
    ConvosStatus,
    Health,
    InstructionsResult,
    InstructionsUpdate,
    Notice,
    Noticed,
    ProvisionRequest,
    ProvisionResult,
    ResetResult,
)
from runtime.service import Agent
from runtime.state import BindingStore
from runtime.state_routes import memory_router, state_router

log = logging.getLogger("runtime")


public = APIRouter()
private = APIRouter(dependencies=[Depends(require_token)])


@public.get("/pool/health", response_model=Health, responses={503: {"description": "Not ready yet"}})
async def health(agent: AgentDep) -> Health | JSONResponse:
    """Report whether the instance is ready to be provisioned."""
    if not agent.ready():
        return JSONResponse({"ready": False}, status_code=503)
    return Health(version=agent.settings.runtime_version, capabilities=agent.settings.runtime_capabilities)


@private.post("/pool/provision", response_model=ProvisionResult)
async def provision(body: ProvisionRequest, agent: AgentDep) -> ProvisionResult:
    """Bind this instance to a new conversation, or join the one behind `joinUrl`."""
    return await agent.provision(body)


@private.get("/convos/status", response_model=ConvosStatus)
async def status(agent: AgentDep) -> ConvosStatus:
    """Show the conversation this instance is bound to, if any."""
    return agent.status()


@private.post("/convos/reset", response_model=ResetResult)
async def reset(agent: AgentDep) -> ResetResult:
    """Forget the conversation, returning the instance to a clean state."""
    await agent.reset()
    return ResetResult()


@private.post(
    "/convos/instructions",
    response_model=InstructionsResult,
    responses={409: {"description": "Not bound to a conversation"}},
)
async def instructions(body: InstructionsUpdate, agent: AgentDep) -> InstructionsResult:
    """Replace the bound agent's instructions in place (the `instructions` capability: a template sync)."""
    return await agent.set_instructions(body)


@private.post("/convos/notify", response_model=Noticed)
async def notify(body: Notice, agent: AgentDep) -> Noticed:
    """An inbound mail or SMS for this agent (services delivers it with this instance's own token)."""
    return Noticed(received=agent.notice(body.model_dump(by_alias=True)))


@private.get("/convos/notifications")
async def notifications(agent: AgentDep) -> list[dict[str, Any]]:
    """The inbound notices received since start (newest last, bounded): what the agent would act on."""
    return list(agent.notices)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RuntimeAppError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    body = {"error": type(exc).__name__, "detail": exc.message}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # The contract promises 400 with an `error` key; the raw `input` is dropped so bodies are never echoed.
    assert isinstance(exc, RequestValidationError)
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    return JSONResponse({"error": "BadRequest", "detail": detail}, status_code=400)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    body = {"error": "HTTPError", "detail": exc.detail}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def _lifespan(settings: Settings) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        crash = None
        if settings.runtime_crash_after is not None:
            crash = asyncio.create_task(_crash_after(settings.runtime_crash_after))
        yield
        if crash is not None:
            crash.cancel()
        log.info("runtime.stopped")

    return lifespan


async def _crash_after(seconds: float) -> None:
    await asyncio.sleep(seconds)
    log.error("runtime.crash after=%s", seconds)
    logging.shutdown()
    # os._exit skips uvicorn's graceful shutdown: the point is to look like a process that died.
    os._exit(1)


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(title="warmpool-runtime", version=settings.runtime_version, lifespan=_lifespan(settings))
    memory = MemoryStore(settings.data_dir / "memory", max_bytes=settings.runtime_state_max_bytes)
    app.state.agent = Agent(settings, BindingStore(settings.data_dir / "binding.json"), memory)
    app.add_exception_handler(RuntimeAppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.include_router(public)
    app.include_router(private)
    app.include_router(memory_router())
    app.include_router(state_router(settings.runtime_capabilities))
    return app
