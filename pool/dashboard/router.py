"""The operator dashboard: server-rendered pages, a little vanilla JS, session-cookie auth.

Every action runs the pool's own service functions in this process; the browser never holds
or sends the bearer API key.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from pydantic import ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from pool.auth import DASHBOARD_CALLER
from pool.claims import queue as claims_queue
from pool.claims import resources as claims_resources
from pool.claims.schemas import ClaimEnqueue, ClaimTicket
from pool.dashboard import service, template_views
from pool.dashboard.session import (
    COOKIE,
    DEVICE_COOKIE,
    DEVICE_MAX_AGE,
    LOGIN_COOKIE,
    MAX_AGE_SECONDS,
    DashboardSession,
    Sessions,
)
from pool.dashboard.throttle import ACCOUNT_LANE, attempt_login
from pool.deps import PoolDep, PoolState
from pool.instances import service as instances_service
from pool.instances.schemas import CountBody
from shared.auth import tokens_match
from shared.db import SessionDep
from shared.errors import BadRequest, Forbidden, Unauthorized, error_body
from shared.schemas import InstanceId
from shared.validation import InputModel

if TYPE_CHECKING:
    from fastapi.templating import Jinja2Templates

HERE = Path(__file__).resolve().parent
STATIC_FILES = {path.name: path for path in (HERE / "static").iterdir() if path.is_file()}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
ClaimId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{32}$")]


def sessions(request: Request) -> Sessions:
    existing: Sessions | None = getattr(request.app.state, "dashboard_sessions", None)
    if existing is None:
        existing = Sessions(request.state.settings)
        request.app.state.dashboard_sessions = existing
    return existing


def secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response


@functools.cache
def templates() -> Jinja2Templates:
    """Built on the first page served: Jinja2 and its templates cost the pool ~4 MB of RSS
    it otherwise never needs (the claim path and the tick render nothing)."""
    from fastapi.templating import Jinja2Templates

    return Jinja2Templates(directory=HERE / "templates")


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return secure(templates().TemplateResponse(request, name, context, status_code=status_code))


async def require_session(request: Request) -> DashboardSession:
    """A valid session cookie, and on state-changing requests its CSRF token echoed back."""
    session = sessions(request).read(request.cookies.get(COOKIE))
    if session is None:
        if request.method == "GET" and request.headers.get("x-requested-with") != "fetch":
            raise HTTPException(status_code=303, headers={"Location": "/dashboard/login"})
        raise Unauthorized("log in to the dashboard first")
    if request.method not in ("GET", "HEAD"):
        token = request.headers.get("x-csrf-token")
        if token is None and "form" in request.headers.get("content-type", ""):
            value = (await request.form()).get("csrf_token")
            token = value if isinstance(value, str) else None
        if not tokens_match(token, session.csrf):
            raise Forbidden("missing or invalid CSRF token")
    return session


SessionAuth = Annotated[DashboardSession, Depends(require_session)]

public = APIRouter(prefix="/dashboard", include_in_schema=False)
protected = APIRouter(prefix="/dashboard", include_in_schema=False, dependencies=[Depends(require_session)])


@public.get("/static/{name}")
async def static(name: str) -> Response:
    path = STATIC_FILES.get(name)
    if path is None:
        return secure(JSONResponse(error_body("NotFound", "no such asset"), status_code=404))
    response = FileResponse(path)
    response.headers.update({**SECURITY_HEADERS, "Cache-Control": "public, max-age=300"})
    return response


def _login_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    token, cookie = sessions(request).login_form_token()
    response = render(request, "login.html", {"csrf_token": token, "error": error}, status_code)
    response.set_cookie(
        LOGIN_COOKIE, cookie, max_age=3600, httponly=True, samesite="strict", path="/dashboard"
    )
    return response


@public.get("/login")
async def login_form(request: Request) -> Response:
    if sessions(request).read(request.cookies.get(COOKIE)) is not None:
        return secure(RedirectResponse("/dashboard", status_code=303))
    return _login_page(request)


@public.post("/login")
async def login(
    request: Request,
    pool: PoolDep,
    secret: Annotated[str, Form(max_length=1000)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    store = sessions(request)
    if not store.login_form_valid(request.cookies.get(LOGIN_COOKIE), csrf_token):
        return _login_page(request, "The form expired; please try again.", 403)
    device = store.device(request.cookies.get(DEVICE_COOKIE))
    outcome = await attempt_login(
        pool["sessionmaker"],
        lane=f"device:{device}" if device else ACCOUNT_LANE,
        max_delay=pool["settings"].login_delay_max_seconds,
        check=lambda: store.credentials_match(secret),
    )
    if outcome.retry_after is not None:
        message = (
            f"Too many login attempts from browsers not seen before; try again in {outcome.retry_after} s. "
            "A browser that logged in here before is not held up."
        )
        response = _login_page(request, message, 429)
        response.headers["Retry-After"] = str(outcome.retry_after)
        return response
    if not outcome.ok:
        return _login_page(request, "Wrong key or password.", 401)
    _, cookie = store.issue()
    response = secure(RedirectResponse("/dashboard", status_code=303))
    secure_cookie = request.url.scheme == "https"
    response.set_cookie(
        COOKIE, cookie, max_age=MAX_AGE_SECONDS, httponly=True, samesite="strict", secure=secure_cookie
    )
    response.set_cookie(
        DEVICE_COOKIE,
        store.device_cookie(device),
        max_age=int(DEVICE_MAX_AGE.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=secure_cookie,
        path="/dashboard/login",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard")
    return response


@protected.post("/logout")
async def logout(request: Request, session: SessionAuth) -> Response:
    sessions(request).revoke(session)
    response = secure(RedirectResponse("/dashboard/login", status_code=303))
    response.delete_cookie(COOKIE)
    return response


@protected.get("")
async def index(request: Request, db: SessionDep, session: SessionAuth) -> Response:
    summary = await service.get_summary(db, request.state.settings)
    agents = await service.list_agents(db, group="all", query="")
    context = {"csrf_token": session.csrf, "summary": summary, "agents": agents, "groups": service.GROUPS}
    context["launch_templates"] = await template_views.launchable(db)
    return render(request, "index.html", context)


@protected.get("/partials/summary")
async def summary_partial(request: Request, db: SessionDep) -> Response:
    summary = await service.get_summary(db, request.state.settings)
    return render(request, "_summary.html", {"summary": summary})


@protected.get("/partials/agents")
async def agents_partial(
    request: Request,
    db: SessionDep,
    group: Annotated[str, Query(max_length=20)] = "all",
    q: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    agents = await service.list_agents(db, group=group, query=q)
    return render(request, "_agents.html", {"agents": agents})


class LaunchForm(InputModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    agent_name: str = Field(default="", max_length=100)
    instructions: str = Field(default="", max_length=50_000)
    join_url: str | None = Field(default=None, max_length=2000)
    template_id: str | None = Field(default=None, max_length=100)


@protected.post("/launch")
async def launch(
    request: Request,
    form: LaunchForm,
    pool: PoolDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    try:
        fields: dict[str, str | None] = {
            "agentName": form.agent_name.strip(),
            "instructions": form.instructions,
        }
        fields |= {"joinUrl": form.join_url, "templateId": form.template_id}
        # A blank name or instructions is left out: the chosen template's (or the claim's) default.
        body = ClaimEnqueue.model_validate({name: value for name, value in fields.items() if value})
    except ValidationError as exc:
        # Name the fields and reasons only: pydantic's own text would echo the input back.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadRequest(problems) from exc
    ticket = await claims_resources.create_claim(
        pool, body, caller=DASHBOARD_CALLER, idempotency_key=idempotency_key
    )
    return await _launch_view(request, ticket, pool)


@protected.get("/claims/{claim_id}")
async def launched_claim(request: Request, claim_id: ClaimId, pool: PoolDep) -> Response:
    """The launch form follows its queued claim here: its place and ETA, then the invite."""
    ticket = await claims_resources.get_claim(pool, claim_id, caller=DASHBOARD_CALLER)
    return await _launch_view(request, ticket, pool)


async def _launch_view(request: Request, ticket: ClaimTicket, pool: PoolState) -> Response:
    if ticket.claim is not None:
        context = {"claim": ticket.claim, "qr": service.qr_data_uri(ticket.claim.invite_url)}
        context["template"] = await template_views.instance_template(
            pool["sessionmaker"], ticket.claim.instance_id
        )
        return render(request, "_launch_result.html", context)
    if ticket.status in ("failed", "cancelled") and ticket.error is not None:
        raise claims_queue.outcome_error(ticket.error.model_dump())
    return render(request, "_launch_queued.html", {"ticket": ticket})


def _done(message: str, **extra: Any) -> Response:
    return secure(JSONResponse({"ok": True, "message": message, **extra}))


# An instance id is validated (422) before any query: a NUL in it was a database error (a 500).
@protected.post("/instances/{instance_id}/kill")
async def kill(instance_id: InstanceId, pool: PoolDep) -> Response:
    await instances_service.kill_instance(pool, instance_id)
    return _done(f"killed {instance_id}")


@protected.post("/instances/{instance_id}/dismiss")
async def dismiss(instance_id: InstanceId, pool: PoolDep) -> Response:
    await instances_service.dismiss_crashed(pool, instance_id)
    return _done(f"dismissed {instance_id}")


@protected.post("/instances/{instance_id}/recheck")
async def recheck(instance_id: InstanceId, pool: PoolDep) -> Response:
    result = await instances_service.recheck(pool, instance_id)
    return _done(f"rechecked {instance_id}: {result.get('status')}")


@protected.post("/drain")
async def drain(body: CountBody, pool: PoolDep) -> Response:
    result = await instances_service.drain(pool, body.count)
    return _done(f"drained {len(result.drained)} of {body.count}", failed=result.failed)


@protected.post("/replenish")
async def replenish(body: CountBody, pool: PoolDep) -> Response:
    result = await instances_service.replenish(pool, body.count)
    return _done(f"creating {len(result.created)} instance(s)")


router = APIRouter()
router.include_router(public)
router.include_router(protected)
