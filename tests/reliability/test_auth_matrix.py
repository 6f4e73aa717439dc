"""Every route of both apps × (no token, wrong token, another instance's token, the right one).

The routes come from the apps' own route tables, so a route added tomorrow makes these tests fail
until someone says here who may call it. Each route's entry is (who, a valid sample request): the
sample must be valid so that a refusal can only come from the credentials.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pool.config import Settings as PoolSettings
from pool.dashboard.session import COOKIE
from pool.main import create_app as create_pool_app
from services.config import Settings as ServicesSettings
from services.main import create_app as create_services_app
from services.platforms.registry import PLATFORMS
from services.tools.registry import TOOLS
from tests.fakes.echo import EchoTool
from tests.fakes.fleet import FakeFleet
from tests.fakes.platform import MemoryPlatform
from tests.pool.conftest import API_KEY as POOL_KEY
from tests.pool.conftest import FakeServices
from tests.pool.conftest import running as running_pool
from tests.pool.dashboard.conftest import log_in, page_csrf
from tests.pool.factories import add_fleet_instances
from tests.services.conftest import create_and_wait
from tests.services.conftest import running as running_services

OPEN, OPERATOR, INSTANCE, TOOL, SESSION = "open", "operator", "instance", "tool", "session"
# The production images' proxy credential: `Bearer <instanceId>:<gatewayToken>`.
PROXY = "proxy"
# A vendor's webhook: authenticated by the vendor's signature over the body (a bearer token is worth
# nothing there). Wrong credentials are checked here; the right signatures in tests/pool/callbacks.
SIGNED = "signed"
# Services' key, presented to the pool by services (a platform event names an instance): never the
# operator key, never an instance's token.
SERVICES = "services"
# A platform's deploy-event webhook: the secret is in the path (the platforms sign nothing), so a
# wrong secret is a 404 whatever the headers; the right one is tested in tests/pool/e2e/test_deploy_events.py.
PATH_SECRET = "path_secret"
# The login form: open to all, but no bearer token (operator key included) gets a session from it.
LOGIN = "login"
SERVICES_KEY = "test-services-key"
MISSING = "000000000000"  # a well-formed id no row has
MISSING_CLAIM = "0" * 32
MISSING_TEMPLATE = "tpl_000000000000"


@dataclass(frozen=True)
class Sample:
    who: str
    path: str | None = None  # the concrete path (None: the route's own path)
    json: Any = None
    form: dict[str, str] | None = None


# {me} is the instance whose token is "the right one", {other} the other instance.
POOL_ROUTES: dict[tuple[str, str], Sample] = {
    ("GET", "/"): Sample(OPEN),  # a redirect to the dashboard
    ("GET", "/openapi.json"): Sample(OPEN),
    ("GET", "/docs"): Sample(OPEN),
    ("GET", "/docs/oauth2-redirect"): Sample(OPEN),
    ("GET", "/redoc"): Sample(OPEN),
    ("GET", "/healthz"): Sample(OPEN),
    ("GET", "/version"): Sample(OPEN),
    ("GET", "/metrics"): Sample(OPEN),
    ("GET", "/api/pool/info"): Sample(OPEN),
    ("POST", "/api/pool/claim"): Sample(OPERATOR, json={"agentName": "Ada", "instructions": "hi"}),
    ("POST", "/api/pool/claims"): Sample(OPERATOR, json={"agentName": "Ada", "instructions": "hi"}),
    ("GET", "/api/pool/claims/{claim_id}"): Sample(OPERATOR, f"/api/pool/claims/{MISSING_CLAIM}"),
    ("GET", "/api/pool/claims/{claim_id}/events"): Sample(
        OPERATOR, f"/api/pool/claims/{MISSING_CLAIM}/events"
    ),
    ("DELETE", "/api/pool/claims/{claim_id}"): Sample(OPERATOR, f"/api/pool/claims/{MISSING_CLAIM}"),
    ("POST", "/api/pool/pending-acceptance/complete"): Sample(INSTANCE, json={"instanceId": "{me}"}),
    ("POST", "/api/pool/pending-acceptance/fail"): Sample(INSTANCE, json={"instanceId": "{me}"}),
    ("GET", "/api/pool/counts"): Sample(OPERATOR),
    ("GET", "/api/pool/agents"): Sample(OPERATOR),
    ("GET", "/api/pool/instances"): Sample(OPERATOR),
    ("GET", "/api/pool/status"): Sample(OPERATOR),
    ("POST", "/api/pool/replenish"): Sample(OPERATOR, json={"count": 1}),
    ("POST", "/api/pool/drain"): Sample(OPERATOR, json={"count": 1}),
    ("DELETE", "/api/pool/instances/{instance_id}"): Sample(OPERATOR, f"/api/pool/instances/{MISSING}"),
    ("POST", "/api/pool/instances/{instance_id}/clone"): Sample(
        OPERATOR, f"/api/pool/instances/{MISSING}/clone"
    ),
    ("DELETE", "/api/pool/crashed/{instance_id}"): Sample(OPERATOR, f"/api/pool/crashed/{MISSING}"),
    ("POST", "/api/pool/recheck/{instance_id}"): Sample(OPERATOR, f"/api/pool/recheck/{MISSING}"),
    ("POST", "/api/pool/internal/observe/{instance_id}"): Sample(
        SERVICES, f"/api/pool/internal/observe/{MISSING}"
    ),
    ("POST", "/api/pool/reconcile"): Sample(OPERATOR),
    # Templates (issue 13, first step): samples name no tools, so none asks services' registry.
    ("GET", "/api/templates"): Sample(OPERATOR),
    ("POST", "/api/templates"): Sample(OPERATOR, json={"slug": "matrix", "name": "Matrix"}),
    ("GET", "/api/templates/{template_id}"): Sample(OPERATOR, "/api/templates/default"),
    ("PATCH", "/api/templates/{template_id}"): Sample(OPERATOR, "/api/templates/default", json={"name": "D"}),
    ("POST", "/api/templates/{template_id}/archive"): Sample(
        OPERATOR, f"/api/templates/tpl_{MISSING}/archive"
    ),
    ("POST", "/api/templates/{template_id}/fork"): Sample(
        OPERATOR, "/api/templates/default/fork", json={"owner": "matrix"}
    ),
    ("GET", "/api/templates/{template_id}/versions"): Sample(OPERATOR, "/api/templates/default/versions"),
    ("GET", "/api/templates/{template_id}/versions/{version}"): Sample(
        OPERATOR, "/api/templates/default/versions/1"
    ),
    # Sync (issue 13): the default template has no instructions of its own (409), past the credentials.
    ("POST", "/api/templates/{template_id}/sync"): Sample(OPERATOR, "/api/templates/default/sync"),
    ("POST", "/api/pool/instances/{instance_id}/sync"): Sample(
        OPERATOR, f"/api/pool/instances/{MISSING}/sync"
    ),
    ("POST", "/api/pool/instances/{instance_id}/upgrade"): Sample(
        OPERATOR, f"/api/pool/instances/{MISSING}/upgrade"
    ),
    ("GET", "/dashboard/templates"): Sample(SESSION),
    ("GET", "/dashboard/templates/new"): Sample(SESSION),
    # Refused input (400), the default template (409), a missing one (404): each past the session check.
    ("POST", "/dashboard/templates/new"): Sample(SESSION, form={"slug": "Bad Slug"}),
    ("GET", "/dashboard/templates/{template_id}"): Sample(SESSION, "/dashboard/templates/default"),
    ("GET", "/dashboard/templates/{template_id}/edit"): Sample(SESSION, "/dashboard/templates/default/edit"),
    ("POST", "/dashboard/templates/{template_id}/edit"): Sample(
        SESSION, f"/dashboard/templates/{MISSING_TEMPLATE}/edit", form={"name": "x"}
    ),
    ("POST", "/dashboard/templates/{template_id}/archive"): Sample(
        SESSION, "/dashboard/templates/default/archive", form={}
    ),
    ("POST", "/dashboard/templates/{template_id}/fork"): Sample(
        SESSION, f"/dashboard/templates/{MISSING_TEMPLATE}/fork", form={"owner": "operator"}
    ),
    ("GET", "/dashboard/static/{name}"): Sample(OPEN, "/dashboard/static/style.css"),
    ("GET", "/dashboard/login"): Sample(OPEN),
    # Its own CSRF, throttle and secret checks are tested in tests/pool/dashboard.
    ("POST", "/dashboard/login"): Sample(LOGIN, form={"secret": "", "csrf_token": ""}),
    ("POST", "/dashboard/logout"): Sample(SESSION),
    ("GET", "/dashboard"): Sample(SESSION),
    ("GET", "/dashboard/partials/summary"): Sample(SESSION),
    ("GET", "/dashboard/partials/agents"): Sample(SESSION),
    ("POST", "/dashboard/launch"): Sample(SESSION, json={"agentName": "Ada", "instructions": "hi"}),
    ("GET", "/dashboard/claims/{claim_id}"): Sample(SESSION, f"/dashboard/claims/{MISSING_CLAIM}"),
    ("POST", "/dashboard/instances/{instance_id}/kill"): Sample(
        SESSION, f"/dashboard/instances/{MISSING}/kill"
    ),
    ("POST", "/dashboard/instances/{instance_id}/dismiss"): Sample(
        SESSION, f"/dashboard/instances/{MISSING}/dismiss"
    ),
    ("POST", "/dashboard/instances/{instance_id}/recheck"): Sample(
        SESSION, f"/dashboard/instances/{MISSING}/recheck"
    ),
    ("POST", "/dashboard/drain"): Sample(SESSION, json={"count": 1}),
    ("POST", "/dashboard/replenish"): Sample(SESSION, json={"count": 1}),
    # The production images' callbacks and proxy (issue 16); services answers behind them.
    ("POST", "/api/pool/self-info"): Sample(INSTANCE, json={"instanceId": "{me}"}),
    ("POST", "/api/pool/credits-check"): Sample(INSTANCE, json={"instanceId": "{me}"}),
    ("POST", "/api/pool/credits-topup"): Sample(INSTANCE, json={"instanceId": "{me}"}),
    ("POST", "/api/pool/redeem-coupon"): Sample(INSTANCE, json={"instanceId": "{me}", "code": "X"}),
    ("GET", "/api/pool/instances/{instance_id}/events"): Sample(OPERATOR, "/api/pool/instances/{me}/events"),
    ("GET", "/api/proxy/services/status"): Sample(OPERATOR, "/api/proxy/services/status?instanceId={me}"),
    ("GET", "/api/proxy/info"): Sample(PROXY),
    ("POST", "/api/proxy/email/provision"): Sample(PROXY),
    ("POST", "/api/proxy/email/unprovision"): Sample(PROXY),
    ("POST", "/api/proxy/sms/provision"): Sample(PROXY),
    ("POST", "/api/proxy/sms/unprovision"): Sample(PROXY),
    ("POST", "/api/proxy/email/send"): Sample(PROXY, json={"to": "a@example.com", "text": "hi"}),
    ("GET", "/api/proxy/email/messages"): Sample(PROXY),
    ("GET", "/api/proxy/email/threads"): Sample(PROXY),
    ("GET", "/api/proxy/email/messages/{message_id}"): Sample(PROXY, "/api/proxy/email/messages/m1"),
    ("PATCH", "/api/proxy/email/messages/{message_id}"): Sample(
        PROXY, "/api/proxy/email/messages/m1", json={"add_labels": ["a"]}
    ),
    ("POST", "/api/proxy/sms/send"): Sample(PROXY, json={"to": "+15550001111", "text": "hi"}),
    ("GET", "/api/proxy/sms/records"): Sample(PROXY),
    ("GET", "/api/proxy/sms/messages/{message_id}"): Sample(PROXY, "/api/proxy/sms/messages/m1"),
    # Last: the right credentials destroy {me}.
    ("POST", "/api/pool/self-destruct"): Sample(INSTANCE, json={"instanceId": "{me}"}),
}

SERVICES_ROUTES: dict[tuple[str, str], Sample] = {
    ("GET", "/openapi.json"): Sample(OPEN),
    ("GET", "/docs"): Sample(OPEN),
    ("GET", "/docs/oauth2-redirect"): Sample(OPEN),
    ("GET", "/redoc"): Sample(OPEN),
    ("GET", "/healthz"): Sample(OPEN),
    ("GET", "/version"): Sample(OPEN),
    ("POST", "/create-instance"): Sample(OPERATOR, json={"instanceId": "newinstance1", "name": "a"}),
    ("DELETE", "/destroy/{instance_id}"): Sample(OPERATOR, f"/destroy/{MISSING}"),
    ("POST", "/configure/{instance_id}"): Sample(OPERATOR, "/configure/{me}", json={"variables": {"A": "b"}}),
    ("POST", "/redeploy/{instance_id}"): Sample(OPERATOR, "/redeploy/{me}", json={}),
    ("POST", "/status/batch"): Sample(OPERATOR, json={}),
    ("POST", "/provision/{instance_id}/{tool_id}"): Sample(TOOL, "/provision/{me}/echo"),
    ("DELETE", "/destroy/{instance_id}/{tool_id}/{resource_id}"): Sample(
        TOOL, "/destroy/{me}/echo/echo-{me}-missing"
    ),
    ("GET", "/registry"): Sample(OPERATOR),
    ("POST", "/sweep"): Sample(OPERATOR),
    ("GET", "/platforms"): Sample(OPERATOR),
    ("POST", "/pooled/{kind}"): Sample(
        OPERATOR, "/pooled/bankr", json={"label": "w", "value": "v-0123456789"}
    ),
    ("GET", "/pooled"): Sample(OPERATOR),
    ("GET", "/instances"): Sample(OPERATOR),
    ("GET", "/instances/{instance_id}"): Sample(OPERATOR, "/instances/{me}"),
    ("POST", "/tools/openrouter/{instance_id}/disable"): Sample(
        OPERATOR, "/tools/openrouter/{me}/disable", json={"disabled": True}
    ),
    ("POST", "/tools/openrouter/{instance_id}/top-up"): Sample(
        OPERATOR, "/tools/openrouter/{me}/top-up", json={"limit": 5}
    ),
    ("DELETE", "/pooled/{resource_id}"): Sample(OPERATOR, "/pooled/999999"),
    ("POST", "/webhooks/agentmail"): Sample(SIGNED, json={"type": "event", "event_type": "message.received"}),
    ("POST", "/webhooks/telnyx"): Sample(SIGNED, json={"data": {"event_type": "message.received"}}),
    ("GET", "/webhooks/counts"): Sample(OPERATOR),
    ("POST", "/webhooks/{provider}/{secret}"): Sample(
        PATH_SECRET, "/webhooks/railway/not-the-secret-0123456789abcdef", json={"type": "Deployment.crashed"}
    ),
    # The proxy the pool forwards to (issue 16): operator only; an unknown instance is a 404.
    **{
        (method, f"/proxy/{{instance_id}}{rest}"): Sample(
            OPERATOR, f"/proxy/{MISSING}{concrete or rest}", json=body
        )
        for method, rest, concrete, body in (
            ("GET", "/info", None, None),
            ("GET", "/self-info", None, None),
            ("POST", "/{kind}/provision", "/email/provision", None),
            ("POST", "/{kind}/unprovision", "/sms/unprovision", None),
            ("POST", "/email/send", None, {"to": "a@example.com"}),
            ("GET", "/email/messages", None, None),
            ("GET", "/email/threads", None, None),
            ("GET", "/email/messages/{message_id}", "/email/messages/m1", None),
            ("PATCH", "/email/messages/{message_id}", "/email/messages/m1", {"add_labels": ["a"]}),
            ("POST", "/sms/send", None, {"to": "+15550001111"}),
            ("GET", "/sms/records", None, None),
            ("GET", "/sms/messages/{message_id}", "/sms/messages/m1", None),
            ("GET", "/credits", None, None),
            ("POST", "/credits/top-up", None, None),
        )
    },
}


def route_table(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD aside (it follows GET)."""
    return {
        (method, context.path)
        for context in iter_route_contexts(app.routes)
        if context.path is not None
        for method in context.methods or ()
        if method != "HEAD"
    }


def test_every_route_of_both_apps_is_classified() -> None:
    pool = route_table(create_pool_app(PoolSettings()))
    services = route_table(create_services_app(ServicesSettings()))
    assert pool - POOL_ROUTES.keys() == set(), "classify these pool routes in POOL_ROUTES"
    assert services - SERVICES_ROUTES.keys() == set(), "classify these services routes in SERVICES_ROUTES"
    # And no entry for a route that no longer exists.
    assert POOL_ROUTES.keys() - pool == set() and SERVICES_ROUTES.keys() - services == set()


DOCS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
PRODUCTION_SECRETS = {"api_key": "k" * 32, "encryption_key": "e" * 32}


async def docs_statuses(app: FastAPI) -> list[int]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        return [(await client.get(path)).status_code for path in DOCS]


async def test_api_docs_are_closed_in_production_and_open_elsewhere() -> None:
    """They map every route for an attacker; the schema tests read `app.openapi()` instead."""
    pool_production = PoolSettings(environment="production", services_api_key="s" * 32, **PRODUCTION_SECRETS)
    services_production = ServicesSettings(environment="production", **PRODUCTION_SECRETS)

    assert await docs_statuses(create_pool_app(pool_production)) == [404] * 4
    assert await docs_statuses(create_services_app(services_production)) == [404] * 4
    assert await docs_statuses(create_pool_app(PoolSettings())) == [200] * 4
    assert await docs_statuses(create_services_app(ServicesSettings())) == [200] * 4
    opened = pool_production.model_copy(update={"api_docs": True})
    assert await docs_statuses(create_pool_app(opened)) == [200] * 4
    assert create_pool_app(pool_production).openapi()["paths"]


@dataclass
class Caller:
    """The four credentials, plus what a dashboard session sends."""

    me: str
    other: str
    right: dict[str, str]  # by class
    other_instance: str
    session_headers: dict[str, str]


async def call(
    client: httpx.AsyncClient, method: str, path: str, sample: Sample, caller: Caller, headers: dict[str, str]
) -> httpx.Response:
    concrete = (sample.path or path).replace("{me}", caller.me).replace("{other}", caller.other)
    body = sample.json
    if isinstance(body, dict):
        body = {k: v.replace("{me}", caller.me) if isinstance(v, str) else v for k, v in body.items()}
    return await client.request(method, concrete, json=body, data=sample.form, headers=headers)


def refused(response: httpx.Response, who: str) -> bool:
    if who == SESSION:
        # A browser GET is sent to the login page; anything else is a 401 JSON.
        return response.status_code == 401 or (
            response.status_code == 303 and response.headers["location"] == "/dashboard/login"
        )
    return response.status_code in (401, 403)


async def check_matrix(
    client: httpx.AsyncClient, routes: dict[tuple[str, str], Sample], caller: Caller, *, forbidden_code: int
) -> list[str]:
    problems: list[str] = []
    wrong_cases = {
        "no token": {},
        "wrong token": {"Authorization": "Bearer not-the-right-token-0123456789"},
        "another instance's token": {"Authorization": f"Bearer {caller.other_instance}"},
    }
    # Logging out ends the session the other dashboard routes are called with: last.
    for (method, path), sample in sorted(
        routes.items(), key=lambda item: item[0] == ("POST", "/dashboard/logout")
    ):
        for case, headers in wrong_cases.items():
            response = await call(client, method, path, sample, caller, headers)
            if sample.who == LOGIN:
                if COOKIE in response.cookies or response.status_code >= 500:
                    problems.append(f"{method} {path} [{case}] login answered {response.status_code}")
            elif sample.who == PATH_SECRET:
                if response.status_code != 404:
                    problems.append(
                        f"{method} {path} [{case}] wrong path secret answered {response.status_code}"
                    )
            elif sample.who == OPEN:
                if response.status_code in (401, 403) or response.status_code >= 500:
                    problems.append(f"{method} {path} [{case}] open route answered {response.status_code}")
            elif not refused(response, sample.who):
                problems.append(f"{method} {path} [{case}] not refused: {response.status_code}")
            elif case == "another instance's token" and sample.who == TOOL:
                if response.status_code != forbidden_code:
                    problems.append(f"{method} {path} [{case}] {response.status_code}, not {forbidden_code}")
        if sample.who in (OPEN, LOGIN, SIGNED, PATH_SECRET):
            continue
        right = caller.session_headers if sample.who == SESSION else caller.right[sample.who]
        response = await call(client, method, path, sample, caller, right)
        if response.status_code in (401, 403) or response.status_code >= 500:
            problems.append(
                f"{method} {path} [right credentials] {response.status_code}: {response.text[:200]}"
            )
    return problems


async def test_pool_auth_matrix(
    pool_settings: Callable[..., PoolSettings],
    fleet: FakeFleet,
    fake_services: FakeServices,
    pool_sessions: async_sessionmaker[AsyncSession],
) -> None:
    me, other = await add_fleet_instances(pool_sessions, fleet, 2, status="pending_acceptance")
    # Idle ones for the claim, the launch and the two drains (which destroy idle instances first).
    await add_fleet_instances(pool_sessions, fleet, 5)
    settings = pool_settings(services_url=fake_services.url)
    async with running_pool(create_pool_app(settings)) as client:
        page = await log_in(client, POOL_KEY)
        assert page.status_code == 303, page.text
        csrf = page_csrf((await client.get("/dashboard")).text)
        cookie = f"{COOKIE}={client.cookies[COOKIE]}"
        caller = Caller(
            me=me,
            other=other,
            right={
                OPERATOR: {"Authorization": f"Bearer {POOL_KEY}"},
                SERVICES: {"Authorization": f"Bearer {settings.services_api_key}"},
                INSTANCE: {"Authorization": f"Bearer {fleet.agents[me].token}"},
                PROXY: {"Authorization": f"Bearer {me}:{fleet.agents[me].token}"},
            },
            other_instance=fleet.agents[other].token,
            session_headers={"Cookie": cookie, "X-CSRF-Token": csrf, "X-Requested-With": "fetch"},
        )
        # Session routes must refuse every bearer token, the operator key included.
        session_routes = {
            k: s for k, s in POOL_ROUTES.items() if s.who == SESSION and k[1] != "/dashboard/logout"
        }
        client.cookies.clear()
        problems = await check_matrix(client, POOL_ROUTES, caller, forbidden_code=401)
        for (method, path), sample in sorted(session_routes.items()):
            response = await call(client, method, path, sample, caller, caller.right[OPERATOR])
            if not refused(response, SESSION):
                problems.append(f"{method} {path} [operator key on the dashboard] {response.status_code}")
        # The route services calls takes services' key only: the operator key is refused there, and
        # services' key opens no operator route.
        for (method, path), sample in sorted(POOL_ROUTES.items()):
            if sample.who == SERVICES:
                response = await call(client, method, path, sample, caller, caller.right[OPERATOR])
            elif sample.who == OPERATOR:
                response = await call(client, method, path, sample, caller, caller.right[SERVICES])
            else:
                continue
            if response.status_code != 401:
                problems.append(f"{method} {path} [the other app's key] {response.status_code}")
    assert problems == [], "\n".join(problems)


@pytest.fixture
def services_world(monkeypatch: pytest.MonkeyPatch) -> tuple[MemoryPlatform, EchoTool]:
    platform, tool = MemoryPlatform(), EchoTool()
    monkeypatch.setitem(PLATFORMS, "memory", lambda settings, client: platform)
    monkeypatch.setitem(TOOLS, "echo", lambda context: tool)
    return platform, tool


@contextlib.asynccontextmanager
async def services_client(services_db_url: str, tmp_path: Any) -> AsyncIterator[httpx.AsyncClient]:
    settings = ServicesSettings(
        environment="test",
        database_url=services_db_url,
        api_key=SERVICES_KEY,
        encryption_key="test-encryption-key",
        local_data_dir=str(tmp_path / "instances"),
        platform="memory",
        sweep_interval_seconds=0,
        agentmail_webhook_secret="whsec_" + "A" * 44,
        telnyx_webhook_public_key="A" * 43 + "=",
    )
    async with running_services(create_services_app(settings)) as client:
        yield client


async def test_services_auth_matrix(
    services_db_url: str, services_world: tuple[MemoryPlatform, EchoTool], tmp_path: Any
) -> None:
    platform, _ = services_world
    operator = {"Authorization": f"Bearer {SERVICES_KEY}"}
    async with services_client(services_db_url, tmp_path) as client:
        for instance_id in ("instance0001", "instance0002"):
            created = await create_and_wait(
                client, {"instanceId": instance_id, "name": "a"}, headers=operator
            )
            assert created["phase"] == "deploying", created
        tokens = {spec.instance_id: spec.env["INSTANCE_SERVICES_TOKEN"] for spec in platform.created}
        caller = Caller(
            me="instance0001",
            other="instance0002",
            right={OPERATOR: operator, TOOL: {"Authorization": f"Bearer {tokens['instance0001']}"}},
            other_instance=tokens["instance0002"],
            session_headers={},
        )
        problems = await check_matrix(client, SERVICES_ROUTES, caller, forbidden_code=403)
        # The operator key also works on the tool routes (it provisions at create time).
        for (method, path), sample in SERVICES_ROUTES.items():
            if sample.who == TOOL:
                response = await call(client, method, path, sample, caller, operator)
                if response.status_code in (401, 403) or response.status_code >= 500:
                    problems.append(f"{method} {path} [operator on a tool route] {response.status_code}")
    assert problems == [], "\n".join(problems)
